//! CPU cost of the authentication primitives: Argon2id hashing and verification (on the
//! hashing threads, as the server runs them) and SimpleJWT-compatible token signing and checking.
//!
//! `cargo bench --bench auth` — prints mean and p99 per operation. Figures are in the README.

use std::time::{Duration, Instant};

use agora::auth::{PasswordHasher, TokenKind, TokenService};

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    let p99 = samples[(samples.len() * 99 / 100).min(samples.len() - 1)];
    println!("{name:<40} n={:<6} mean={mean:>10.2?} p99={p99:>10.2?}", samples.len());
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let hasher = PasswordHasher::new(std::thread::available_parallelism().map_or(2, |n| n.get()));

    let hash = runtime.block_on(hasher.hash("correct horse battery".into())).expect("hash");
    let mut samples = Vec::new();
    for _ in 0..30 {
        let started = Instant::now();
        runtime.block_on(hasher.hash("correct horse battery".into())).expect("hash");
        samples.push(started.elapsed());
    }
    report("argon2id hash (m=19456,t=2,p=1)", samples);

    let mut samples = Vec::new();
    for _ in 0..30 {
        let started = Instant::now();
        assert!(runtime.block_on(hasher.verify("correct horse battery".into(), Some(hash.clone()))).expect("verify"));
        samples.push(started.elapsed());
    }
    report("argon2id verify", samples);

    // Throughput of concurrent sign-in verifications, bounded by the hasher's permits.
    let started = Instant::now();
    let total = 64;
    runtime.block_on(async {
        let tasks: Vec<_> = (0..total)
            .map(|_| {
                let hasher = hasher.clone();
                let hash = hash.clone();
                tokio::spawn(async move { hasher.verify("correct horse battery".into(), Some(hash)).await })
            })
            .collect();
        for task in tasks {
            task.await.expect("task").expect("verify");
        }
    });
    let elapsed = started.elapsed();
    println!(
        "{:<40} {total} in {elapsed:.2?} = {:.0}/s",
        "argon2id verify, concurrent",
        total as f64 / elapsed.as_secs_f64()
    );

    let tokens = TokenService::new(b"bench-secret", 300, 86_400);
    let mut samples = Vec::new();
    let mut last = String::new();
    for _ in 0..10_000 {
        let started = Instant::now();
        last = tokens.issue(TokenKind::Access, 42).token;
        samples.push(started.elapsed());
    }
    report("token issue (HS256)", samples);
    let mut samples = Vec::new();
    for _ in 0..10_000 {
        let started = Instant::now();
        tokens.verify(&last, TokenKind::Access).expect("valid");
        samples.push(started.elapsed());
    }
    report("token verify (HS256)", samples);
}
