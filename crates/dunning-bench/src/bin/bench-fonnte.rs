//! `bench-fonnte [TOKEN]`: runs `dunning_test_fonnte` (a loopback Fonnte
//! API) with an unlimited quota, prints `READY <port>`, and serves until stdin
//! closes; then prints `SENT <n>` (requests to `/send`) and exits.

use std::io::Read;

use dunning_test_fonnte::FonnteFake;

fn main() {
    let token = std::env::args().nth(1).unwrap_or_else(|| "x".to_owned());
    let fake = FonnteFake::with_token(&token);
    fake.set_quota(i64::MAX / 2);
    let port = fake.url().rsplit(':').next().unwrap_or_default().to_owned();
    println!("READY {port}");
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    println!("SENT {}", fake.sent().len());
}
