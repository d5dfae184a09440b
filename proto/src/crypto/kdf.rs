//! The password KDF's parameters: what the node stores per account and hands back at login,
//! and the bounds within which a client accepts them. The derivation itself is the client's
//! (`sealpost_client::crypto::derive_password_keys`).

use serde::{Deserialize, Serialize};

use super::CryptoError;

/// Argon2id cost parameters.  Stored per account so they can be raised
/// later without breaking existing users.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_cost_kib: u32,
    /// Number of passes.
    pub t_cost: u32,
    /// Degree of parallelism (lanes).  The result does not depend on how
    /// many threads actually compute it.
    pub p_cost: u32,
}

impl KdfParams {
    /// 64 MiB, 3 passes, 1 lane.
    pub const DEFAULT: KdfParams = KdfParams {
        m_cost_kib: 65536,
        t_cost: 3,
        p_cost: 1,
    };

    /// The smallest parameters [`validate`](Self::validate) accepts: 8 MiB, 1 pass, 1 lane.
    /// For tests and benchmarks that enrol many users; never a default.
    pub const MIN: KdfParams = KdfParams {
        m_cost_kib: 8 * 1024,
        t_cost: 1,
        p_cost: 1,
    };

    /// Checks the parameters are within sane bounds: memory 8 MiB to
    /// 1 GiB, 1 to 10 passes, 1 to 8 lanes.  Parameters come from the
    /// server to the client, so a hostile server must not be able to make
    /// the client use a trivially weak KDF or allocate unbounded memory.
    pub fn validate(&self) -> Result<(), CryptoError> {
        if !(Self::MIN.m_cost_kib..=1024 * 1024).contains(&self.m_cost_kib) {
            return Err(CryptoError::Malformed(format!(
                "KDF memory cost {} KiB outside 8192..=1048576",
                self.m_cost_kib
            )));
        }
        if !(Self::MIN.t_cost..=10).contains(&self.t_cost) {
            return Err(CryptoError::Malformed(format!(
                "KDF time cost {} outside 1..=10",
                self.t_cost
            )));
        }
        if !(Self::MIN.p_cost..=8).contains(&self.p_cost) {
            return Err(CryptoError::Malformed(format!(
                "KDF parallelism {} outside 1..=8",
                self.p_cost
            )));
        }
        Ok(())
    }
}

impl Default for KdfParams {
    fn default() -> Self {
        Self::DEFAULT
    }
}
