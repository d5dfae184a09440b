//! The OpenAPI document of `/api/v1`, served at `/api/v1/openapi.json`, generated from the code:
//! the wire types derive `utoipa::ToSchema` (`sealpost-proto`), every handler carries
//! `#[utoipa::path]` (method, path, body, answers with their error codes), and `api::routes`
//! registers each handler together with its documentation (`utoipa_axum::routes!`), so nothing
//! is served undocumented or documented unserved. The error answers that whole kinds of routes
//! share (no session, a body that is not the JSON asked for, a server fault) come from shared
//! extractors and layers and are added here once ([`add_shared_errors`]).
//!
//! `webui/openapi.json` is this document (a test below compares them); the web app's types are
//! generated from that file (`npm run api-types`), so a changed wire type breaks its build.

use std::sync::LazyLock;

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::content::Content;
use utoipa::openapi::header::Header;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{ObjectBuilder, Ref, RefOr, Type};
use utoipa::{Modify, OpenApi};

use crate::proto::{AttachmentMeta, Envelope, EnvelopePart, ErrorBody, Head};

/// What the handlers' annotations do not say: title, prefix, security schemes, and the wire
/// types no route carries as a body but clients need (the signed envelope, the sealed head).
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Sealpost node API",
        version = "1",
        description = "All routes are under /api/v1. Errors are `ErrorBody` ({code, message}) with a stable code; each answer lists the codes it can carry. The node never receives passwords, unwrapped keys or plaintext. The key directory (HKP /pks/lookup and /pks/add, VKS /vks/v1/..., WKD /.well-known/openpgpkey/...) is served beside the API at the server root. Browsers log in with the header X-Sealpost-Session: cookie and then authenticate with an HttpOnly, SameSite=Strict session cookie; state-changing requests with that cookie must carry the session's CSRF token (from the login answer) in X-CSRF-Token. Generated from the node's code."
    ),
    servers((url = "/api/v1")),
    security(("bearer" = []), ("cookie" = [])),
    components(schemas(ErrorBody, Envelope, EnvelopePart, Head, AttachmentMeta)),
    modifiers(&SecuritySchemes)
)]
pub(super) struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("Session token from /login"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "pickup_session",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "Pickup session from /pickup/unlock: reaches its own pickup only",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                super::web::SESSION_COOKIE,
                "Web app session (set by /login with X-Sealpost-Session: cookie). Non-GET requests also need X-CSRF-Token.",
            ))),
        );
    }
}

/// The document: every route of [`super::routes`], with the errors they share.
pub fn document() -> utoipa::openapi::OpenApi {
    let (_, mut doc) = super::routes().split_for_parts();
    add_shared_errors(&mut doc);
    doc
}

/// [`document`] as served and as `webui/openapi.json` holds it: pretty JSON, one final newline.
pub fn json() -> &'static str {
    static JSON: LazyLock<String> = LazyLock::new(|| {
        let mut text = document()
            .to_pretty_json()
            .expect("the document serialises");
        text.push('\n');
        text
    });
    &JSON
}

#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "meta",
    summary = "This document (OpenAPI 3.1), generated from the node's code",
    responses((status = 200, description = "The OpenAPI document", body = Object)),
    security(())
)]
pub(super) async fn openapi_json() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], json())
}

/// Adds to every operation the error answers that come from what all routes of its kind share:
/// the session extractor (`Authed`) and the cookie layer (`web::cookie_session`) for routes that
/// need a session, `ApiJson` for JSON bodies, `ApiPath` / `ApiQuery` for parameters, and the
/// storage and panic layers for all. A status the handler documents gets these codes appended.
fn add_shared_errors(doc: &mut utoipa::openapi::OpenApi) {
    for item in doc.paths.paths.values_mut() {
        let ops = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for op in ops.into_iter().flatten() {
            let public = op
                .security
                .as_ref()
                .is_some_and(|s| s.iter().all(|r| *r == SecurityRequirement::default()));
            let pickup_session = op.security.as_ref().is_some_and(|s| {
                s.iter()
                    .all(|r| *r == SecurityRequirement::new("pickup_session", Vec::<String>::new()))
            });
            if !public && !pickup_session {
                add_error(op, "401", "`unauthenticated`: no valid session");
                add_error(
                    op,
                    "403",
                    "`account_disabled`; `csrf_failed`: a cookie session's request without its `X-CSRF-Token`",
                );
            }
            let json_body = op
                .request_body
                .as_ref()
                .is_some_and(|b| b.content.contains_key("application/json"));
            if json_body {
                add_error(
                    op,
                    "400",
                    "`malformed_json`, `invalid_request`: not the JSON this route takes",
                );
                add_error(
                    op,
                    "413",
                    "`too_large`: the body is over `http.max_json_body`",
                );
                add_error(
                    op,
                    "415",
                    "`unsupported_media_type`: send `Content-Type: application/json`",
                );
            }
            let params = op.parameters.iter().flatten();
            let (mut path, mut query) = (false, false);
            for p in params {
                path |= matches!(p.parameter_in, ParameterIn::Path);
                query |= matches!(p.parameter_in, ParameterIn::Query);
            }
            if path {
                add_error(op, "400", "`invalid_path`: a path parameter does not parse");
            }
            if query {
                add_error(op, "400", "`invalid_query`: the query does not parse");
            }
            add_error(
                op,
                "500",
                "`internal`: the node failed; the cause is logged, not shown",
            );
            add_error(
                op,
                "503",
                "`overloaded`: the node's write queue is full; retry after `Retry-After` seconds",
            );
        }
    }
}

/// Adds `codes` to the error answer `status` of `op`, creating it (an [`ErrorBody`]) if needed.
fn add_error(op: &mut Operation, status: &str, codes: &str) {
    let answers = &mut op.responses.responses;
    match answers.get_mut(status) {
        Some(RefOr::T(r)) => {
            r.description = format!("{}; {codes}", r.description);
        }
        Some(RefOr::Ref(_)) => unreachable!("the handlers' answers are written out, not refs"),
        None => {
            let mut r = ResponseBuilder::new().description(codes).content(
                "application/json",
                Content::new(Some(Ref::from_schema_name("ErrorBody"))),
            );
            if status == "503" {
                r = r.header(
                    "Retry-After",
                    Header::new(ObjectBuilder::new().schema_type(Type::Integer)),
                );
            }
            let r = r.build();
            answers.insert(status.to_owned(), RefOr::T(r));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use axum::body::Body;
    use axum::http::{Method, Request};
    use tower::ServiceExt;

    use super::*;

    /// Every documented route answers its documented methods (anything but `no_route` and
    /// `method_not_allowed`) and refuses the others with `405 method_not_allowed`: the router
    /// and the document agree, checked against the router itself. (That nothing is served
    /// undocumented holds by construction: `api::routes` registers only through `routes!`.)
    #[tokio::test]
    async fn the_router_serves_exactly_the_documented_methods_of_each_path() {
        let (_dir, node) = crate::node::temp_node("openapi.test").await;
        let app = super::super::app(node.state);
        let doc = document();
        assert!(doc.paths.paths.len() >= 28, "{:?}", doc.paths.paths.keys());
        let mut checked = 0;
        for (path, item) in &doc.paths.paths {
            let documented: BTreeSet<&str> = [
                ("GET", item.get.is_some()),
                ("PUT", item.put.is_some()),
                ("POST", item.post.is_some()),
                ("DELETE", item.delete.is_some()),
                ("PATCH", item.patch.is_some()),
            ]
            .into_iter()
            .filter_map(|(m, d)| d.then_some(m))
            .collect();
            assert!(!documented.is_empty(), "{path} has no operation");
            // Concrete values for the parameters; what they name need not exist.
            let concrete = path
                .replace("{index}", "0")
                .replace("{id}", "1")
                .replace("{folder}", "inbox")
                .replace("{address}", "nobody@openapi.test")
                .replace("{domain}", "peer.test")
                .replace("{sha256}", &"ab".repeat(32))
                .replace("{fingerprint}", &"AB".repeat(20))
                .replace("{mid}", &"0".repeat(32));
            assert!(!concrete.contains('{'), "a new parameter in {path}");
            for method in ["GET", "PUT", "POST", "DELETE", "PATCH"] {
                let req = Request::builder()
                    .method(Method::from_bytes(method.as_bytes()).unwrap())
                    .uri(format!("{}{concrete}", crate::proto::API_PREFIX))
                    .header("content-type", "application/json")
                    .body(Body::from("{}"))
                    .unwrap();
                let resp = app.clone().oneshot(req).await.unwrap();
                let status = resp.status();
                let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
                    .await
                    .unwrap();
                let code = serde_json::from_slice::<ErrorBody>(&body)
                    .map(|e| e.code)
                    .unwrap_or_default();
                if documented.contains(method) {
                    assert!(
                        code != "no_route" && code != "method_not_allowed",
                        "{method} {path} is documented but answers {status} {code}"
                    );
                } else {
                    assert_eq!(
                        code, "method_not_allowed",
                        "{method} {path} is not documented but answers {status}"
                    );
                }
                checked += 1;
            }
        }
        assert!(checked >= 140, "{checked}");
    }

    /// Every schema reference resolves, and every operation documents an error answer.
    #[test]
    fn every_reference_resolves_and_every_operation_documents_its_errors() {
        let doc: serde_json::Value = serde_json::from_str(json()).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        let mut refs = Vec::new();
        collect_refs(&doc, &mut refs);
        assert!(refs.len() > 50, "{refs:?}");
        for r in refs {
            let name = r.strip_prefix("#/components/schemas/").unwrap_or(&r);
            assert!(schemas.contains_key(name), "dangling $ref {r}");
        }
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let answers = op["responses"].as_object().unwrap();
                assert!(
                    answers.keys().any(|s| s.starts_with('2')),
                    "{method} {path} documents no success"
                );
                assert!(
                    answers["500"]["content"]["application/json"]["schema"]["$ref"]
                        == "#/components/schemas/ErrorBody",
                    "{method} {path}: {answers:?}"
                );
            }
        }
    }

    fn collect_refs(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    match (k.as_str(), v) {
                        ("$ref", serde_json::Value::String(r)) => out.push(r.clone()),
                        _ => collect_refs(v, out),
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| collect_refs(v, out)),
            _ => {}
        }
    }

    /// The web app's copy of the document, from which its API types are generated, is this
    /// document: a changed wire type or route fails here until the copy is regenerated (and
    /// then the web app's type check shows what the change breaks there).
    #[test]
    fn the_web_apps_copy_of_the_document_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../webui/openapi.json");
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == json(),
            "webui/openapi.json is not the document the code generates. Regenerate it and the \
             web app's types: `cargo run -p sealpost-bin -- openapi > webui/openapi.json && \
             (cd webui && npm run api-types)`"
        );
    }
}
