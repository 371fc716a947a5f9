//! One short sequence's forward pass, back to back and after idle gaps, timed in Rust alone:
//! `cargo run --release -p eurobert --example short_call -- MODEL_DIR [threads] [gap_us]`.
//! Set beside `bench/call-profile.mjs` it shows what the napi hop adds to `logitsForIds`.
use std::path::Path;
use std::time::{Duration, Instant};

use eurobert::{LoadOptions, RunOptions, TokenClassifier};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = Path::new(&args[0]);
    let threads: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(2);
    let gap: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(0);
    let dtype = if std::env::var("EUROBERT_DTYPE").is_ok_and(|v| v == "q8") { eurobert::Dtype::Q8 } else { eurobert::Dtype::F32 };
    let model = TokenClassifier::load(dir, &LoadOptions { threads: Some(threads), dtype, ..Default::default() }).expect("load");
    let text = "Jens Stoltenberg møtte statsminister Erna Solberg i Oslo tirsdag.".to_string();
    let ids = model.tokenize(std::slice::from_ref(&text)).unwrap()[0].ids.clone();
    let mut tok: Vec<f64> = (0..3000)
        .map(|_| {
            let s = Instant::now();
            drop(model.tokenize(std::slice::from_ref(&text)).unwrap());
            s.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    tok.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!("tokenize, on this thread: p50 {:.1} µs", tok[tok.len() / 2]);
    let opts = RunOptions::default();
    let mut t: Vec<f64> = (0..1200)
        .map(|_| {
            if gap > 0 {
                std::thread::sleep(Duration::from_micros(gap));
            }
            let s = Instant::now();
            drop(model.logits_for_ids(&[&ids], &opts).unwrap());
            s.elapsed().as_secs_f64() * 1e6
        })
        .skip(200)
        .collect();
    t.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "{} tokens, {threads} threads, gap {gap} µs: p50 {:.0} µs, p10 {:.0}, p90 {:.0}",
        ids.len(),
        t[t.len() / 2],
        t[t.len() / 10],
        t[t.len() * 9 / 10]
    );
}
