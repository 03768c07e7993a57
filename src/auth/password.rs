//! Argon2id password hashing, on a few threads of its own.
//!
//! Argon2 is CPU-bound (about 13 ms of one core per hash) and needs a 19 MiB memory block while
//! it runs. Hashes run on `concurrency` dedicated threads (default: one per core) fed by one
//! queue: a sign-in burst queues instead of eating the executor's threads, every hashing thread
//! goes from one hash to the next without a hand-over, and at most `concurrency` blocks exist.
//! Each thread keeps its block between hashes (allocating and faulting in 19 MiB costs about a
//! quarter of a hash) and gives it back to the system once it has been idle for
//! [`IDLE_RELEASE`], so that a quiet server does not hold 19 MiB per core. On tokio's blocking
//! pool, by contrast, any of its many threads could pick a hash up, and each that ever did kept
//! a block until it idled out.
//!
//! Hashes are PHC strings (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`); Django's
//! `argon2$`-prefixed form is accepted too, so accounts imported from the legacy service keep
//! their passwords.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use argon2::password_hash::phc::{Output, ParamsString, Salt};
use argon2::password_hash::{Error as PhcError, Result as PhcResult};
use argon2::{ARGON2ID_IDENT, Algorithm, Argon2, Block, Params, PasswordHash, PasswordVerifier, Version};
use rand::RngCore;
use subtle::ConstantTimeEq;
use tokio::sync::{oneshot, watch};

/// OWASP's recommendation for Argon2id (m=19 MiB, t=2, p=1).
const M_COST: u32 = 19_456;
const T_COST: u32 = 2;
const P_COST: u32 = 1;
const SALT_LEN: usize = 16;
const HASH_LEN: usize = 32;

/// How long a hashing thread keeps its memory block with nothing to hash. Long enough for a
/// burst of sign-ins to reuse it, short enough that memory is back within seconds of a burst.
pub const IDLE_RELEASE: Duration = Duration::from_secs(1);

/// Hashes and verifies passwords on dedicated threads, `concurrency` at a time.
#[derive(Clone)]
pub struct PasswordHasher {
    pool: Arc<Pool>,
}

/// A hash of a random password, verified against when the username is unknown, so that a
/// sign-in costs the same whether or not the account exists. Made on first use, by a hashing
/// thread (it needs a memory block).
static DUMMY_HASH: OnceLock<String> = OnceLock::new();

impl PasswordHasher {
    /// `concurrency` hashes at most run at once (default: the number of cores), each on a
    /// thread of its own.
    pub fn new(concurrency: usize) -> Self {
        Self::with_idle_release(concurrency, IDLE_RELEASE)
    }

    fn with_idle_release(concurrency: usize, idle: Duration) -> Self {
        Self { pool: Arc::new(Pool::start(concurrency.max(1), idle)) }
    }

    pub async fn hash(&self, password: String) -> anyhow::Result<String> {
        self.run(move |memory| hash_now(memory, &password)).await
    }

    /// True when `password` matches `hash`; with no hash (unknown user) it spends the same
    /// time on a dummy hash and returns false.
    pub async fn verify(&self, password: String, hash: Option<String>) -> anyhow::Result<bool> {
        self.run(move |memory| match hash {
            Some(hash) => verify_now(memory, &password, &hash),
            None => {
                let dummy = DUMMY_HASH.get_or_init(|| hash_now(memory, &random_password()));
                verify_now(memory, &password, dummy);
                false
            }
        })
        .await
    }

    /// Queues `work` for the next free hashing thread now; the future waits for its result.
    fn run<T, F>(&self, work: F) -> impl Future<Output = anyhow::Result<T>> + use<T, F>
    where
        T: Send + 'static,
        F: FnOnce(&mut Memory) -> T + Send + 'static,
    {
        let (tell, told) = oneshot::channel();
        // Counted from queueing to the end of the hash, wherever the caller is by then.
        let in_flight = crate::metrics::password_hash();
        let span = tracing::info_span!("password.hash");
        self.pool.submit(Box::new(move |memory| {
            let _in_flight = in_flight;
            // A caller that went away (a client that disconnected while queued) needs no hash.
            if !tell.is_closed() {
                let _ = tell.send(span.in_scope(|| work(memory)));
            }
        }));
        async move { told.await.map_err(|_| anyhow::anyhow!("the password hashing thread failed (see the log)")) }
    }
}

/// A hash to compute, given the thread's memory block.
type Job = Box<dyn FnOnce(&mut Memory) + Send>;

/// The handle of the hashing threads: when the last [`PasswordHasher`] clone drops it, they
/// finish what is queued and end.
struct Pool {
    shared: Arc<Shared>,
}

struct Shared {
    queue: Mutex<Queue>,
    /// Signalled when a job is queued or the pool closes.
    wake: Condvar,
    idle_release: Duration,
    /// Memory blocks held by the threads right now (tests wait on it).
    blocks: watch::Sender<usize>,
    /// Blocks allocated since the start (a burst should allocate one per thread, not per hash).
    allocations: std::sync::atomic::AtomicU64,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    closed: bool,
}

impl Pool {
    fn start(threads: usize, idle_release: Duration) -> Self {
        let shared = Arc::new(Shared {
            queue: Mutex::default(),
            wake: Condvar::new(),
            idle_release,
            blocks: watch::Sender::new(0),
            allocations: Default::default(),
        });
        for i in 0..threads {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || hashing_thread(&shared))
                .expect("cannot start a password hashing thread");
        }
        Self { shared }
    }

    fn submit(&self, job: Job) {
        self.shared.queue.lock().unwrap_or_else(|e| e.into_inner()).jobs.push_back(job);
        self.shared.wake.notify_one();
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.queue.lock().unwrap_or_else(|e| e.into_inner()).closed = true;
        self.shared.wake.notify_all();
    }
}

/// One hashing thread: takes jobs until the pool closes, releasing its block when idle.
fn hashing_thread(shared: &Arc<Shared>) {
    let mut memory = Memory { blocks: None, shared: shared.clone() };
    while let Some(job) = next_job(shared, &mut memory) {
        // A panicking job answers nobody (its caller gets an error) and leaves the thread up.
        if std::panic::catch_unwind(AssertUnwindSafe(|| job(&mut memory))).is_err() {
            tracing::error!("a password hash panicked");
        }
    }
}

/// The next job, waiting for one; the block goes back to the system after `idle_release`
/// without one. None once the pool is closed and drained.
fn next_job(shared: &Shared, memory: &mut Memory) -> Option<Job> {
    let mut queue = shared.queue.lock().unwrap_or_else(|e| e.into_inner());
    let idle_since = Instant::now();
    loop {
        if let Some(job) = queue.jobs.pop_front() {
            return Some(job);
        }
        if queue.closed {
            return None;
        }
        if memory.is_held() {
            let left = shared.idle_release.saturating_sub(idle_since.elapsed());
            if left.is_zero() {
                drop(queue);
                memory.release();
                queue = shared.queue.lock().unwrap_or_else(|e| e.into_inner());
                continue;
            }
            queue = shared.wake.wait_timeout(queue, left).unwrap_or_else(|e| e.into_inner()).0;
        } else {
            queue = shared.wake.wait(queue).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// A hashing thread's Argon2 working memory, allocated on first use and kept until released.
struct Memory {
    blocks: Option<mapping::Blocks>,
    shared: Arc<Shared>,
}

impl Memory {
    fn is_held(&self) -> bool {
        self.blocks.is_some()
    }

    /// `count` blocks, reusing the held ones when the size matches.
    fn blocks(&mut self, count: usize) -> &mut [Block] {
        if self.blocks.as_ref().is_some_and(|held| held.len() != count) {
            self.release();
        }
        if self.blocks.is_none() {
            self.shared.allocations.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.shared.blocks.send_modify(|held| *held += 1);
        }
        self.blocks.get_or_insert_with(|| mapping::Blocks::new(count)).as_mut()
    }

    fn release(&mut self) {
        if self.blocks.take().is_some() {
            self.shared.blocks.send_modify(|held| *held -= 1);
        }
    }
}

impl Drop for Memory {
    fn drop(&mut self) {
        self.release();
    }
}

/// The blocks live in a private anonymous mapping of their own rather than on the heap: freeing
/// it gives the memory back to the system at once, whatever the allocator does with freed big
/// chunks (glibc raises its mmap threshold after the first such free and then keeps later
/// blocks in an arena below its trim threshold), and the mapping can ask for transparent huge
/// pages, which made a hash about 5 % faster here (12.6 instead of 13.2 ms; far fewer TLB
/// misses and page faults) on a system whose THP setting is `madvise`, the common default.
#[cfg(unix)]
mod mapping {
    use std::ptr::NonNull;

    use argon2::Block;

    pub struct Blocks {
        start: NonNull<Block>,
        len: usize,
    }

    impl Blocks {
        /// `len` zeroed blocks; panics when the system has no memory left (the hash fails).
        pub fn new(len: usize) -> Self {
            let bytes = len.max(1) * size_of::<Block>();
            // SAFETY: asks for a new private anonymous mapping; no existing memory is touched.
            let start = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    bytes,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
            assert!(
                start != libc::MAP_FAILED,
                "cannot map {bytes} bytes for Argon2: {}",
                std::io::Error::last_os_error()
            );
            // Advice only: where huge pages are off, this fails and nothing changes.
            #[cfg(target_os = "linux")]
            // SAFETY: the range is the mapping just made.
            unsafe {
                libc::madvise(start, bytes, libc::MADV_HUGEPAGE);
            }
            Self { start: NonNull::new(start.cast()).expect("mmap does not return null"), len }
        }

        pub fn len(&self) -> usize {
            self.len
        }
    }

    impl AsMut<[Block]> for Blocks {
        fn as_mut(&mut self) -> &mut [Block] {
            // SAFETY: the mapping holds `len` blocks, is page-aligned (a block needs 64 bytes),
            // zero-filled by the system (all-zero words are a valid block), lives as long as
            // `self`, and is reached only through this exclusive borrow.
            unsafe { std::slice::from_raw_parts_mut(self.start.as_ptr(), self.len) }
        }
    }

    impl Drop for Blocks {
        fn drop(&mut self) {
            // SAFETY: unmaps exactly the mapping made in `new`; no borrow of it outlives `self`.
            unsafe {
                libc::munmap(self.start.as_ptr().cast(), self.len.max(1) * size_of::<Block>());
            }
        }
    }
}

/// Elsewhere the blocks come from the heap.
#[cfg(not(unix))]
mod mapping {
    use argon2::Block;

    pub struct Blocks(Vec<Block>);

    impl Blocks {
        pub fn new(len: usize) -> Self {
            Self(vec![Block::default(); len])
        }

        pub fn len(&self) -> usize {
            self.0.len()
        }
    }

    impl AsMut<[Block]> for Blocks {
        fn as_mut(&mut self) -> &mut [Block] {
            &mut self.0
        }
    }
}

fn random_password() -> String {
    let mut password = [0u8; 16];
    rand::rng().fill_bytes(&mut password);
    hex::encode(password)
}

/// Argon2 into `out`, in the thread's memory block.
fn compute(memory: &mut Memory, argon: &Argon2<'_>, password: &[u8], salt: &[u8], out: &mut [u8]) -> PhcResult<()> {
    let blocks = memory.blocks(argon.params().block_count());
    argon.hash_password_into_with_memory(password, salt, out, blocks).map_err(|_| PhcError::Crypto)
}

fn hash_now(memory: &mut Memory, password: &str) -> String {
    let mut salt = [0u8; SALT_LEN];
    rand::rng().fill_bytes(&mut salt);
    let params = Params::new(M_COST, T_COST, P_COST, Some(HASH_LEN)).expect("valid argon2 parameters");
    let mut out = [0u8; HASH_LEN];
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    compute(memory, &argon, password.as_bytes(), &salt, &mut out).expect("argon2 accepts these inputs");
    let phc = PasswordHash {
        algorithm: ARGON2ID_IDENT,
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).expect("argon2 parameters as PHC"),
        salt: Some(Salt::new(&salt).expect("a 16-byte salt")),
        hash: Some(Output::new(&out).expect("a 32-byte output")),
    };
    phc.to_string()
}

/// Argon2id version 19 (what this service and Django store) in the thread's memory block: the
/// crate's own `Argon2` verifier would allocate the block afresh for every verification.
struct InMemory<'a>(std::cell::RefCell<&'a mut Memory>);

impl PasswordVerifier<PasswordHash> for InMemory<'_> {
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
        compute(&mut self.0.borrow_mut(), &argon, password, salt.as_ref(), &mut out)?;
        if bool::from(out.ct_eq(expected.as_bytes())) { Ok(()) } else { Err(PhcError::PasswordInvalid) }
    }
}

/// Whether `password` matches the stored `phc` string (or Django's `argon2`-prefixed form of it).
fn verify_now(memory: &mut Memory, password: &str, phc: &str) -> bool {
    let phc = phc.strip_prefix("argon2").filter(|rest| rest.starts_with("$argon2id$")).unwrap_or(phc);
    PasswordHash::new(phc).is_ok_and(|hash| InMemory(memory.into()).verify_password(password.as_bytes(), &hash).is_ok())
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Memory for calling the hashing functions on the test's own thread.
    fn scratch() -> Memory {
        let shared = Pool::start(0, IDLE_RELEASE).shared.clone();
        Memory { blocks: None, shared }
    }

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
        let memory = &mut scratch();
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
        assert!(verify_now(memory, "password", &foreign), "{foreign}");
        assert!(!verify_now(memory, "passwore", &foreign));
        // And ours verifies with the crate's own verifier (after the smaller foreign block,
        // the memory is resized for ours).
        let ours = hash_now(memory, "password");
        assert!(Argon2::default().verify_password(b"password", &PasswordHash::new(&ours).unwrap()).is_ok());
    }

    /// Many queued jobs run on `concurrency` threads and never more at once, and each thread
    /// allocates its block once for the whole burst.
    #[tokio::test]
    async fn a_burst_runs_on_concurrency_threads_with_one_block_each() {
        let hasher = PasswordHasher::with_idle_release(2, Duration::from_secs(3600));
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let jobs: Vec<_> = (0..12)
            .map(|i| {
                let (hasher, running, most) = (hasher.clone(), running.clone(), most.clone());
                tokio::spawn(async move {
                    hasher
                        .run(move |memory| {
                            most.fetch_max(running.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
                            let hash = hash_now(memory, &format!("password {i}"));
                            running.fetch_sub(1, Ordering::SeqCst);
                            (std::thread::current().id(), hash)
                        })
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut threads = HashSet::new();
        for job in jobs {
            threads.insert(job.await.unwrap().0);
        }
        assert!(threads.len() <= 2, "{} threads hashed", threads.len());
        assert!(most.load(Ordering::SeqCst) <= 2, "{} hashes at once", most.load(Ordering::SeqCst));
        let shared = &hasher.pool.shared;
        assert_eq!(*shared.blocks.borrow(), threads.len(), "each thread that hashed holds its block");
        assert_eq!(shared.allocations.load(Ordering::SeqCst), threads.len() as u64, "one block per thread");
    }

    /// After a burst, the idle threads give their blocks back; the next hash allocates anew.
    #[tokio::test]
    async fn idle_threads_release_their_blocks() {
        let hasher = PasswordHasher::with_idle_release(2, Duration::ZERO);
        let mut held = hasher.pool.shared.blocks.subscribe();
        let hash = hasher.hash("password".into()).await.unwrap();
        assert_eq!(hasher.pool.shared.allocations.load(Ordering::SeqCst), 1);
        // The count was 1 when the hash returned; this waits for it to reach zero. Without the
        // release it never does, and the generous bound turns that hang into a failure.
        let released = tokio::time::timeout(Duration::from_secs(120), held.wait_for(|n| *n == 0)).await;
        // (The value's read lock is let go at once: the hashing thread needs to write it.)
        assert!(released.map(|r| r.is_ok()).unwrap_or(false), "the block is still held");
        assert!(hasher.verify("password".into(), Some(hash)).await.unwrap());
        assert_eq!(hasher.pool.shared.allocations.load(Ordering::SeqCst), 2, "allocated again after the release");
    }

    /// A caller that went away while its hash was queued costs no hash.
    #[tokio::test]
    async fn an_abandoned_hash_is_not_computed() {
        let hasher = PasswordHasher::with_idle_release(1, Duration::from_secs(3600));
        // The one thread waits for `go` while the abandoned job queues behind it.
        let (go, wait) = std::sync::mpsc::channel::<()>();
        let blocked = hasher.run(move |_| wait.recv().unwrap());
        let ran = Arc::new(AtomicUsize::new(0));
        let counted = ran.clone();
        let abandoned = hasher.run(move |_| counted.fetch_add(1, Ordering::SeqCst));
        drop(abandoned);
        go.send(()).unwrap();
        blocked.await.unwrap();
        // A sentinel queued after it: once it has run, the abandoned job has had its turn.
        hasher.run(|_| ()).await.unwrap();
        assert_eq!(ran.load(Ordering::SeqCst), 0);
    }
}
