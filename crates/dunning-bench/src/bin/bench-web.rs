//! Load generator for `dunning-web` (scripts/bench): signed Tripay callbacks at a
//! fixed rate, open loop (latency counted from each request's scheduled start, so a
//! slow server cannot hide its queueing), bounded in count and time, loopback only.
//!
//!   bench-web http://127.0.0.1:PORT RATE SECONDS
//!
//! Env: TRIPAY_PRIVATE_KEY (the server's). Request i pays invoice INV-BENCH-{i:06}
//! (the invoices scripts/bench creates), so each callback marks a distinct invoice
//! paid, as real traffic does. Prints one summary line;
//! exit 1 when a request failed.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dunning_fake_gateways::sign;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        eprintln!("usage: bench-web BASE_URL RATE SECONDS");
        std::process::exit(2);
    }
    let base = args[1].trim_end_matches('/').to_owned();
    assert!(
        base.starts_with("http://127.") || base.starts_with("http://localhost"),
        "bench-web only targets loopback"
    );
    let rate: f64 = args[2].parse().expect("RATE");
    let secs: f64 = args[3].parse().expect("SECONDS");
    let key = std::env::var("TRIPAY_PRIVATE_KEY").expect("TRIPAY_PRIVATE_KEY");
    let order = "INV-BENCH-";
    let total = (rate * secs).round() as usize;
    let threads = 16usize;
    let start = Instant::now() + Duration::from_millis(200);
    let results = Arc::new(Mutex::new(Vec::with_capacity(total)));
    let errors = Arc::new(Mutex::new(Vec::new()));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (base, key) = (base.clone(), key.clone());
            let (results, errors) = (Arc::clone(&results), Arc::clone(&errors));
            std::thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .timeout_global(Some(Duration::from_secs(10)))
                    .build()
                    .into();
                let url = format!("{base}/webhooks/tripay");
                for i in (t..total).step_by(threads) {
                    let due = start + Duration::from_secs_f64(i as f64 / rate);
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    let body = sign::tripay_body(
                        &format!("BENCH-{i}"),
                        &format!("{order}{i:06}"),
                        "PAID",
                        150_000,
                    );
                    let sig = sign::tripay_callback(body.as_bytes(), &key);
                    let r = agent
                        .post(&url)
                        .header("Content-Type", "application/json")
                        .header("X-Callback-Event", "payment_status")
                        .header("X-Callback-Signature", &sig)
                        .send(body.as_bytes());
                    let took = due.elapsed();
                    match r {
                        Ok(resp) if resp.status().as_u16() == 200 => {
                            results.lock().unwrap().push(took)
                        }
                        Ok(resp) => errors
                            .lock()
                            .unwrap()
                            .push(format!("HTTP {}", resp.status())),
                        Err(e) => errors.lock().unwrap().push(e.to_string()),
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let wall = start.elapsed().as_secs_f64();
    let mut lat = results.lock().unwrap().clone();
    lat.sort();
    let errors = errors.lock().unwrap();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return f64::NAN;
        }
        let idx = ((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1;
        lat[idx].as_secs_f64() * 1000.0
    };
    println!(
        "bench-web: {} signed callbacks at {rate} req/s over {wall:.1} s: ok {}, errors {}; latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        total,
        lat.len(),
        errors.len(),
        pct(0.50),
        pct(0.99),
        pct(1.0)
    );
    if let Some(e) = errors.first() {
        eprintln!("bench-web: first error: {e}");
        std::process::exit(1);
    }
}
