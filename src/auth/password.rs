//! Argon2id password hashing, off the async executor.
//!
//! Hashes run on tokio's blocking pool, at most a few at a time (a sign-in burst must not eat
//! every thread), and each blocking thread reuses one Argon2 memory block instead of allocating
//! 19 MiB per hash, which keeps the resident size low after a sign-in flood. Hashes are PHC
//! strings (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`); Django's `argon2$`-prefixed form is
//! accepted too, so accounts imported from the legacy service keep their passwords.

use std::cell::RefCell;
use std::sync::{Arc, LazyLock};

use argon2::{Algorithm, Argon2, Block, Params, Version};
use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use rand::RngCore;
use tokio::sync::Semaphore;

/// OWASP's recommendation for Argon2id (m=19 MiB, t=2, p=1).
const M_COST: u32 = 19_456;
const T_COST: u32 = 2;
const P_COST: u32 = 1;
const SALT_LEN: usize = 16;
const HASH_LEN: usize = 32;

/// Hashes and verifies passwords on the blocking pool, bounded in concurrency.
#[derive(Clone)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
}

/// A hash of a random password, verified against when the username is unknown, so that a
/// sign-in costs the same whether or not the account exists.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    let mut password = [0u8; 16];
    rand::rng().fill_bytes(&mut password);
    hash_now(&hex::encode(password))
});

thread_local! {
    /// The Argon2 working memory of this blocking thread, reused across hashes.
    static MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

impl PasswordHasher {
    /// `concurrency` hashes at most run at once (default: the number of cores).
    pub fn new(concurrency: usize) -> Self {
        Self { permits: Arc::new(Semaphore::new(concurrency.max(1))) }
    }

    pub async fn hash(&self, password: String) -> anyhow::Result<String> {
        self.blocking(move || Ok(hash_now(&password))).await
    }

    /// True when `password` matches `hash`; with no hash (unknown user) it spends the same
    /// time on a dummy hash and returns false.
    pub async fn verify(&self, password: String, hash: Option<String>) -> anyhow::Result<bool> {
        self.blocking(move || match hash {
            Some(hash) => Ok(verify_now(&password, &hash)),
            None => {
                verify_now(&password, &DUMMY_HASH);
                Ok(false)
            }
        })
        .await
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        // The permit travels with the blocking work: a caller that goes away (a client that
        // disconnects) cannot free it while the hash is still running.
        let in_flight = crate::metrics::password_hash();
        let permit = self.permits.clone().acquire_owned().await?;
        let span = tracing::info_span!("password.hash");
        tokio::task::spawn_blocking(move || {
            let _permit = (permit, in_flight);
            span.in_scope(work)
        })
        .await?
    }
}

fn argon2(m: u32, t: u32, p: u32) -> Option<Argon2<'static>> {
    let params = Params::new(m, t, p, Some(HASH_LEN)).ok()?;
    Some(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

fn compute(argon: &Argon2<'_>, password: &str, salt: &[u8], out: &mut [u8]) -> bool {
    MEMORY.with_borrow_mut(|memory| {
        let blocks = argon.params().block_count();
        if memory.len() != blocks {
            memory.resize(blocks, Block::default());
        }
        argon.hash_password_into_with_memory(password.as_bytes(), salt, out, &mut memory[..]).is_ok()
    })
}

fn hash_now(password: &str) -> String {
    let mut salt = [0u8; SALT_LEN];
    rand::rng().fill_bytes(&mut salt);
    let argon = argon2(M_COST, T_COST, P_COST).expect("valid argon2 parameters");
    let mut out = [0u8; HASH_LEN];
    assert!(compute(&argon, password, &salt, &mut out), "argon2 accepts these inputs");
    format!("$argon2id$v=19$m={M_COST},t={T_COST},p={P_COST}${}${}", B64.encode(salt), B64.encode(out))
}

fn verify_now(password: &str, phc: &str) -> bool {
    let phc = phc.strip_prefix("argon2").filter(|rest| rest.starts_with("$argon2id")).unwrap_or(phc);
    let parts: Vec<&str> = phc.split('$').collect();
    let ["", "argon2id", "v=19", params, salt, hash] = parts.as_slice() else {
        return false;
    };
    let (mut m, mut t, mut p) = (None, None, None);
    for pair in params.split(',') {
        match pair.split_once('=') {
            Some(("m", v)) => m = v.parse().ok(),
            Some(("t", v)) => t = v.parse().ok(),
            Some(("p", v)) => p = v.parse().ok(),
            _ => return false,
        }
    }
    let (Some(m), Some(t), Some(p)) = (m, t, p) else { return false };
    let (Ok(salt), Ok(expected)) = (B64.decode(salt), B64.decode(hash)) else { return false };
    if expected.len() != HASH_LEN {
        return false;
    }
    let Some(argon) = argon2(m, t, p) else { return false };
    let mut out = [0u8; HASH_LEN];
    compute(&argon, password, &salt, &mut out) && out.iter().zip(&expected).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_differ() {
        let hasher = PasswordHasher::new(2);
        let a = hasher.hash("correct horse".into()).await.unwrap();
        let b = hasher.hash("correct horse".into()).await.unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert_ne!(a, b, "salted");
        assert!(hasher.verify("correct horse".into(), Some(a.clone())).await.unwrap());
        assert!(!hasher.verify("wrong horse".into(), Some(a.clone())).await.unwrap());
        assert!(!hasher.verify("correct horse".into(), None).await.unwrap());
        assert!(!hasher.verify("x".into(), Some("garbage".into())).await.unwrap());
        // Django's stored form of the same hash.
        assert!(hasher.verify("correct horse".into(), Some(format!("argon2{a}"))).await.unwrap());
    }
}
