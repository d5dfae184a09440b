//! Guests (docs/pickup.md, "Guests"): the pickup's recipient upgrades to a key of their own,
//! and a user certifies a guest's key as known by first contact by Message Unlock Code.

use sealpost_proto::{CertificationResponse, EnrollResponse, GuestUpgradeRequest, KdfParams};

use crate::{Client, ClientError, Enrolled, Result, Session, check, crypto, json};

impl Client {
    /// Under the pickup session `pickup_session` (from unlocking the pickup for `address`),
    /// makes a key for `address` wrapped under `password` and registers it: `address` becomes a
    /// guest of the organisation and logs in with [`Client::login`] from then on.
    pub async fn upgrade_pickup(
        &self,
        pickup_session: &str,
        address: &str,
        password: &[u8],
        params: KdfParams,
    ) -> Result<Enrolled> {
        let org = self.org().await?;
        let login = crate::new_login(address, None, password, params).await?;
        let resp: EnrollResponse = json(
            self.http
                .post(self.url("/pickup/upgrade"))
                .bearer_auth(pickup_session)
                .json(&GuestUpgradeRequest {
                    cert: login.cert,
                    wrapped_key: login.wrapped_key,
                    kdf_salt: login.kdf_salt,
                    kdf_params: login.kdf_params,
                    login_verifier: login.login_verifier,
                })
                .send()
                .await?,
        )
        .await?;
        Ok(Enrolled {
            address: resp.address,
            fingerprint: resp.fingerprint,
            ca_fingerprint: org.ca_fingerprint,
        })
    }
}

impl Session {
    /// Certifies the key the node holds for the guest `address` as known by first contact by
    /// Message Unlock Code (the guest made it after unlocking a message of yours), and publishes
    /// the certification. Returns the key's fingerprint with the node's answer.
    pub async fn certify_first_contact(
        &self,
        address: &str,
    ) -> Result<(String, CertificationResponse)> {
        let address = address.trim().to_ascii_lowercase();
        let armored = check(self.get(&format!("/users/{address}/cert")).send().await?)
            .await?
            .text()
            .await?;
        let target = crypto::cert_from_armored(&armored)?;
        let signed = sealpost_trust::certify_first_contact(
            &self.me,
            &target,
            &address,
            sealpost_trust::FIRST_CONTACT_MUC,
            self.signing_time(&target, &address),
        )
        .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let fingerprint = target.fingerprint().to_hex();
        Ok((fingerprint, self.upload_certification(&signed).await?))
    }
}
