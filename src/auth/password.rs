//! Argon2id password hashing, off the async executor.
//!
//! Hashes run on tokio's blocking pool, at most a few at a time (a sign-in burst must not eat
//! every thread), and each blocking thread reuses one Argon2 memory block instead of allocating
//! 19 MiB per hash, which keeps the resident size low after a sign-in flood. Hashes are PHC
//! strings (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`); Django's `argon2$`-prefixed form is
//! accepted too, so accounts imported from the legacy service keep their passwords.

use std::cell::RefCell;
use std::sync::{Arc, LazyLock};

use argon2::password_hash::phc::{Output, ParamsString, Salt};
use argon2::password_hash::{Error as PhcError, Result as PhcResult};
use argon2::{ARGON2ID_IDENT, Algorithm, Argon2, Block, Params, PasswordHash, PasswordVerifier, Version};
use rand::RngCore;
use subtle::ConstantTimeEq;
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

/// Argon2 into `out`, in this blocking thread's reused memory block.
fn compute(argon: &Argon2<'_>, password: &[u8], salt: &[u8], out: &mut [u8]) -> PhcResult<()> {
    MEMORY.with_borrow_mut(|memory| {
        let blocks = argon.params().block_count();
        if memory.len() != blocks {
            memory.resize(blocks, Block::default());
        }
        argon.hash_password_into_with_memory(password, salt, out, &mut memory[..]).map_err(|_| PhcError::Crypto)
    })
}

fn hash_now(password: &str) -> String {
    let mut salt = [0u8; SALT_LEN];
    rand::rng().fill_bytes(&mut salt);
    let params = Params::new(M_COST, T_COST, P_COST, Some(HASH_LEN)).expect("valid argon2 parameters");
    let mut out = [0u8; HASH_LEN];
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    compute(&argon, password.as_bytes(), &salt, &mut out).expect("argon2 accepts these inputs");
    let phc = PasswordHash {
        algorithm: ARGON2ID_IDENT,
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).expect("argon2 parameters as PHC"),
        salt: Some(Salt::new(&salt).expect("a 16-byte salt")),
        hash: Some(Output::new(&out).expect("a 32-byte output")),
    };
    phc.to_string()
}

/// Argon2id version 19 (what this service and Django store) on the reused memory block: the
/// crate's own `Argon2` verifier would allocate the block afresh for every verification.
struct ReusedMemory;

impl PasswordVerifier<PasswordHash> for ReusedMemory {
    fn verify_password(&self, password: &[u8], hash: &PasswordHash) -> PhcResult<()> {
        if hash.algorithm != ARGON2ID_IDENT {
            return Err(PhcError::Algorithm);
        }
        if hash.version != Some(Version::V0x13.into()) {
            return Err(PhcError::Version);
        }
        let (Some(salt), Some(expected)) = (&hash.salt, &hash.hash) else { return Err(PhcError::PasswordInvalid) };
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::try_from(hash)?);
        let mut out = vec![0u8; expected.len()];
        compute(&argon, password, salt.as_ref(), &mut out)?;
        if bool::from(out.ct_eq(expected.as_bytes())) { Ok(()) } else { Err(PhcError::PasswordInvalid) }
    }
}

/// Whether `password` matches the stored `phc` string (or Django's `argon2`-prefixed form of it).
fn verify_now(password: &str, phc: &str) -> bool {
    let phc = phc.strip_prefix("argon2").filter(|rest| rest.starts_with("$argon2id$")).unwrap_or(phc);
    PasswordHash::new(phc).is_ok_and(|hash| ReusedMemory.verify_password(password.as_bytes(), &hash).is_ok())
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
        // Other algorithms, versions and mangled strings never match.
        for other in [a.replace("$v=19$", "$v=16$"), a.replace("argon2id", "argon2i"), a.replace("$m=", "$x=")] {
            assert!(!hasher.verify("correct horse".into(), Some(other.clone())).await.unwrap(), "{other}");
        }
    }

    /// A hash made by the crate's own hasher verifies (the format is read, not only our own
    /// output), and ours verifies with the crate's own verifier.
    #[test]
    fn verifies_a_foreign_hash() {
        let salt = b"somesaltsomesalt";
        let params = Params::new(64, 1, 1, Some(HASH_LEN)).unwrap();
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        let foreign =
            <Argon2 as argon2::password_hash::CustomizedPasswordHasher<PasswordHash>>::hash_password_with_params(
                &argon,
                b"password",
                salt,
                params,
            )
            .unwrap()
            .to_string();
        assert!(verify_now("password", &foreign), "{foreign}");
        assert!(!verify_now("passwore", &foreign));
        // And ours verifies with the crate's own verifier.
        let ours = hash_now("password");
        assert!(Argon2::default().verify_password(b"password", &PasswordHash::new(&ours).unwrap()).is_ok());
    }
}
