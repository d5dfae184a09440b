//! Outside keys (docs/mail.md): a user imports, lists and removes OpenPGP and X.509
//! certificates of outside addresses for themselves, an administrator for everyone, and a user
//! looks up what the node finds for an outside address. Each handler is a call into
//! `service::outside_keys`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::{AdminAuthed, ApiJson, ApiPath, ApiResult, AppState, Authed};
use crate::proto::ErrorBody;
use crate::proto::outside::{
    FoundKeyView, FoundX509View, ImportKeyRequest, OutsideKeyList, OutsideKeyView,
    OutsideKeysResponse,
};
use crate::service::{self, outside_keys::KeyOwner};

#[utoipa::path(
    get,
    path = "/outside-keys/lookup/{address}",
    tag = "keys",
    summary = "The OpenPGP keys and X.509 certificates the node finds for an outside address, with where each came from and the logged-in user's verdict",
    description = "Looks in the user's and the administrators' imports, then the address's Web Key Directory, then the configured keyservers (stopping at the first that has a key); X.509 certificates come from imports and are checked against the organisation's trust anchors. A place that fails to answer is listed in `notes`, not an error.",
    params(("address" = String, Path, description = "E-mail address")),
    responses(
        (status = 200, description = "What was found", body = OutsideKeysResponse),
        (status = 400, description = "`invalid_address`", body = ErrorBody),
        (status = 403, description = "`guest_not_allowed`", body = ErrorBody),
        (status = 409, description = "`not_enrolled`: your account has no key", body = ErrorBody),
    )
)]
pub(super) async fn lookup(
    State(st): State<AppState>,
    auth: Authed,
    ApiPath(address): ApiPath<String>,
) -> ApiResult<Json<OutsideKeysResponse>> {
    service::guests::not_for_guests(&auth.account, "look up outside keys")?;
    let found =
        service::outside_keys::find(&st, &auth.account, &address, std::time::SystemTime::now())
            .await?;
    Ok(Json(OutsideKeysResponse {
        address: address.trim().to_ascii_lowercase(),
        openpgp: found
            .openpgp
            .into_iter()
            .map(|k| FoundKeyView {
                cert: k.cert,
                fingerprint: k.fingerprint,
                source: k.source,
                verdict: k.verdict,
            })
            .collect(),
        x509: found
            .x509
            .into_iter()
            .map(|x| FoundX509View {
                pem: x.pem,
                sha256: x.sha256,
                source: x.source,
                anchored: x.anchored.is_ok(),
                not_anchored_because: x.anchored.err(),
            })
            .collect(),
        notes: found.notes,
    }))
}

#[utoipa::path(
    get,
    path = "/outside-keys",
    tag = "keys",
    summary = "The outside keys the logged-in user imported (not the administrators')",
    responses(
        (status = 200, description = "The imports, oldest first", body = OutsideKeyList),
    )
)]
pub(super) async fn list(
    State(st): State<AppState>,
    auth: Authed,
) -> ApiResult<Json<OutsideKeyList>> {
    let keys = service::outside_keys::list(
        st.store.as_ref(),
        &st.config.delivery,
        KeyOwner::User(auth.account.id),
    )
    .await?;
    Ok(Json(OutsideKeyList { keys }))
}

#[utoipa::path(
    post,
    path = "/outside-keys",
    tag = "keys",
    summary = "Import an outside address's OpenPGP certificate or X.509 certificate (PEM) for the logged-in user",
    request_body = ImportKeyRequest,
    responses(
        (status = 201, description = "Imported (or replaced the same key)", body = OutsideKeyView),
        (status = 400, description = "`invalid_cert`: not a certificate; `invalid_address`", body = ErrorBody),
        (status = 403, description = "`guest_not_allowed`", body = ErrorBody),
        (status = 409, description = "`conflict`: too many imports", body = ErrorBody),
        (status = 413, description = "`too_large`: larger than `delivery.max_key_bytes`", body = ErrorBody),
        (status = 422, description = "`secret_key`: a secret key; `invalid_cert`: no (matching) address or no encryption key", body = ErrorBody),
    )
)]
pub(super) async fn import(
    State(st): State<AppState>,
    auth: Authed,
    ApiJson(req): ApiJson<ImportKeyRequest>,
) -> ApiResult<(StatusCode, Json<OutsideKeyView>)> {
    service::guests::not_for_guests(&auth.account, "import keys")?;
    import_for(&st, KeyOwner::User(auth.account.id), &auth, req).await
}

#[utoipa::path(
    delete,
    path = "/outside-keys/{fingerprint}",
    tag = "keys",
    summary = "Remove one of the logged-in user's imported keys",
    params(("fingerprint" = String, Path, description = "OpenPGP fingerprint or X.509 SHA-256 (hex)")),
    responses(
        (status = 204, description = "Removed"),
        (status = 400, description = "`invalid_request`: not hexadecimal", body = ErrorBody),
        (status = 404, description = "`unknown_key`: you imported no such key", body = ErrorBody),
    )
)]
pub(super) async fn remove(
    State(st): State<AppState>,
    auth: Authed,
    ApiPath(fingerprint): ApiPath<String>,
) -> ApiResult<StatusCode> {
    remove_for(&st, KeyOwner::User(auth.account.id), &auth, &fingerprint).await
}

#[utoipa::path(
    get,
    path = "/admin/outside-keys",
    tag = "admin",
    summary = "The outside keys administrators imported for every user",
    responses(
        (status = 200, description = "The imports, oldest first", body = OutsideKeyList),
        (status = 403, description = "`not_admin`", body = ErrorBody),
    )
)]
pub(super) async fn admin_list(
    State(st): State<AppState>,
    _: AdminAuthed,
) -> ApiResult<Json<OutsideKeyList>> {
    let keys = service::outside_keys::list(st.store.as_ref(), &st.config.delivery, KeyOwner::Admin)
        .await?;
    Ok(Json(OutsideKeyList { keys }))
}

#[utoipa::path(
    post,
    path = "/admin/outside-keys",
    tag = "admin",
    summary = "Import an outside address's OpenPGP certificate or X.509 certificate (PEM) for every user",
    request_body = ImportKeyRequest,
    responses(
        (status = 201, description = "Imported (or replaced the same key)", body = OutsideKeyView),
        (status = 400, description = "`invalid_cert`: not a certificate; `invalid_address`", body = ErrorBody),
        (status = 403, description = "`not_admin`", body = ErrorBody),
        (status = 409, description = "`conflict`: too many imports", body = ErrorBody),
        (status = 413, description = "`too_large`", body = ErrorBody),
        (status = 422, description = "`secret_key`; `invalid_cert`: no (matching) address or no encryption key", body = ErrorBody),
    )
)]
pub(super) async fn admin_import(
    State(st): State<AppState>,
    AdminAuthed(auth): AdminAuthed,
    ApiJson(req): ApiJson<ImportKeyRequest>,
) -> ApiResult<(StatusCode, Json<OutsideKeyView>)> {
    import_for(&st, KeyOwner::Admin, &auth, req).await
}

#[utoipa::path(
    delete,
    path = "/admin/outside-keys/{fingerprint}",
    tag = "admin",
    summary = "Remove a key administrators imported for every user",
    params(("fingerprint" = String, Path, description = "OpenPGP fingerprint or X.509 SHA-256 (hex)")),
    responses(
        (status = 204, description = "Removed"),
        (status = 400, description = "`invalid_request`: not hexadecimal", body = ErrorBody),
        (status = 403, description = "`not_admin`", body = ErrorBody),
        (status = 404, description = "`unknown_key`", body = ErrorBody),
    )
)]
pub(super) async fn admin_remove(
    State(st): State<AppState>,
    AdminAuthed(auth): AdminAuthed,
    ApiPath(fingerprint): ApiPath<String>,
) -> ApiResult<StatusCode> {
    remove_for(&st, KeyOwner::Admin, &auth, &fingerprint).await
}

/// An import for `owner`, logged with `auth`'s address as the actor.
async fn import_for(
    st: &AppState,
    owner: KeyOwner,
    auth: &Authed,
    req: ImportKeyRequest,
) -> ApiResult<(StatusCode, Json<OutsideKeyView>)> {
    let view = service::outside_keys::import(
        st.store.as_ref(),
        &st.config.delivery,
        owner,
        &auth.account.address,
        req.key.as_bytes(),
        req.address.as_deref(),
        std::time::SystemTime::now(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// Removes `owner`'s import, logged with `auth`'s address as the actor.
async fn remove_for(
    st: &AppState,
    owner: KeyOwner,
    auth: &Authed,
    fingerprint: &str,
) -> ApiResult<StatusCode> {
    service::outside_keys::remove(
        st.store.as_ref(),
        owner,
        &auth.account.address,
        fingerprint,
        std::time::SystemTime::now(),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
