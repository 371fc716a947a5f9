//! Compares q8 logits with f32 on texts (cosine per token, argmax agreement):
//! `cargo run --release -p eurobert --example q8_check -- MODEL_DIR CONLLU [sentences]`.
use std::path::Path;

use eurobert::{Dtype, LoadOptions, RunOptions, TokenClassifier};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = Path::new(&args[0]);
    let count: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(200);
    let texts: Vec<String> = std::fs::read_to_string(&args[1])
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("# text = "))
        .map(str::to_string)
        .take(count)
        .collect();
    let load = |dtype| TokenClassifier::load(dir, &LoadOptions { threads: Some(2), dtype, ..Default::default() }).unwrap();
    let (f, q) = (load(Dtype::F32), load(Dtype::Q8));
    let l = f.config().num_labels();
    let a = f.logits(&texts, &RunOptions::default()).unwrap();
    let b = q.logits(&texts, &RunOptions::default()).unwrap();
    let (mut tokens, mut same, mut worst_cos, mut sum_cos) = (0usize, 0usize, 1f64, 0f64);
    for (x, y) in a.iter().zip(&b) {
        for (rx, ry) in x.logits.chunks(l).zip(y.logits.chunks(l)) {
            let dot: f64 = rx.iter().zip(ry).map(|(p, q)| *p as f64 * *q as f64).sum();
            let nx: f64 = rx.iter().map(|p| (*p as f64).powi(2)).sum::<f64>().sqrt();
            let ny: f64 = ry.iter().map(|p| (*p as f64).powi(2)).sum::<f64>().sqrt();
            let cos = dot / (nx * ny);
            worst_cos = worst_cos.min(cos);
            sum_cos += cos;
            let am = |r: &[f32]| r.iter().enumerate().fold(0, |b, (i, v)| if *v > r[b] { i } else { b });
            same += (am(rx) == am(ry)) as usize;
            tokens += 1;
        }
    }
    println!(
        "{{\"tokens\":{tokens},\"argmaxAgreement\":{:.5},\"minCosine\":{worst_cos:.6},\"meanCosine\":{:.6}}}",
        same as f64 / tokens as f64,
        sum_cos / tokens as f64
    );
}
