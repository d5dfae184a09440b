//! Outside keys (docs/mail.md): the user's imports of outside addresses' OpenPGP and X.509
//! certificates, and what the node finds for an outside address.

use sealpost_proto::outside::{
    ImportKeyRequest, OutsideKeyList, OutsideKeyView, OutsideKeysResponse,
};

use crate::{Result, Session, check, json};

impl Session {
    /// Imports `key` (an armored OpenPGP certificate or an X.509 certificate in PEM) for this
    /// user; with `address`, the key must carry it.
    pub async fn import_key(&self, key: &str, address: Option<&str>) -> Result<OutsideKeyView> {
        json(
            self.post("/outside-keys")
                .json(&ImportKeyRequest {
                    key: key.to_owned(),
                    address: address.map(str::to_owned),
                })
                .send()
                .await?,
        )
        .await
    }

    /// This user's imports.
    pub async fn imported_keys(&self) -> Result<Vec<OutsideKeyView>> {
        let list: OutsideKeyList = json(self.get("/outside-keys").send().await?).await?;
        Ok(list.keys)
    }

    /// Removes one of this user's imports (by fingerprint or SHA-256).
    pub async fn remove_key(&self, fingerprint: &str) -> Result<()> {
        check(
            self.client
                .http
                .delete(self.client.url(&format!("/outside-keys/{fingerprint}")))
                .bearer_auth(&self.token)
                .send()
                .await?,
        )
        .await?;
        Ok(())
    }

    /// What the node finds for an outside address: keys with where they came from and this
    /// user's verdict, X.509 certificates, and where it found nothing.
    pub async fn outside_keys(&self, address: &str) -> Result<OutsideKeysResponse> {
        json(
            self.get(&format!("/outside-keys/lookup/{address}"))
                .send()
                .await?,
        )
        .await
    }
}
