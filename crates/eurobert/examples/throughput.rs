//! Forward-pass timing without Node, for profiling the Rust side alone:
//! `cargo run --release -p eurobert --example throughput -- MODEL_DIR CONLLU [threads] [sentences]`
//! prints load time, sentences/s over batches of 32, single-sentence p50 and tokens/s over
//! ~500-token documents (`EUROBERT_DOC_CHARS`, default 1,500 characters). `EUROBERT_PROFILE=1`
//! adds per-operation times; `EUROBERT_DTYPE=q8` runs the int8 path.
use std::path::Path;
use std::time::Instant;

use eurobert::{LoadOptions, RunOptions, TokenClassifier};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = Path::new(&args[0]);
    let text = std::fs::read_to_string(&args[1]).expect("conllu");
    let threads: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(2);
    let count: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1000);
    let sentences: Vec<String> = text.lines().filter_map(|l| l.strip_prefix("# text = ")).map(str::to_string).take(count).collect();
    let t = Instant::now();
    let dtype = if std::env::var("EUROBERT_DTYPE").is_ok_and(|v| v == "q8") { eurobert::Dtype::Q8 } else { eurobert::Dtype::F32 };
    let model = TokenClassifier::load(dir, &LoadOptions { threads: Some(threads), dtype, ..Default::default() }).expect("load");
    println!("load {:.0} ms", t.elapsed().as_secs_f64() * 1e3);
    let opts = RunOptions::default();
    model.logits(&sentences[..8.min(sentences.len())], &opts).unwrap();

    let enc = model.tokenize(&sentences).unwrap();
    let tokens: usize = enc.iter().map(|e| e.len()).sum();
    let t = Instant::now();
    model.logits(&sentences, &opts).unwrap();
    let s = t.elapsed().as_secs_f64();
    println!(
        "sentences: {} in {:.3} s = {:.1} sentences/s, {:.0} tokens/s",
        sentences.len(),
        s,
        sentences.len() as f64 / s,
        tokens as f64 / s
    );

    // Seconds of one call per short sentence, the median of `count` sentences.
    let p50 = |count: usize, call: &dyn Fn(&String)| {
        let mut t: Vec<f64> = sentences
            .iter()
            .filter(|s| s.len() < 120)
            .take(count)
            .map(|s| {
                let t = Instant::now();
                call(s);
                t.elapsed().as_secs_f64()
            })
            .collect();
        t.sort_by(|a, b| a.partial_cmp(b).unwrap());
        t[t.len() / 2]
    };
    let ms = 1e3 * p50(30, &|s| drop(model.logits(std::slice::from_ref(s), &opts).unwrap()));
    println!("single sentence p50 {ms:.2} ms");
    let us = 1e6 * p50(300, &|s| drop(model.tokenize(std::slice::from_ref(s)).unwrap()));
    println!("single sentence tokenize p50 {us:.1} µs");

    // 1,500 characters make ~500 EuroBERT tokens; BERT's 512-token window needs fewer.
    let doc_chars: usize = std::env::var("EUROBERT_DOC_CHARS").ok().and_then(|v| v.parse().ok()).unwrap_or(1500);
    let mut docs = Vec::new();
    let mut d = String::new();
    for s in sentences.iter().cycle().take(2000) {
        d.push_str(s);
        d.push(' ');
        if d.len() >= doc_chars {
            docs.push(std::mem::take(&mut d));
            if docs.len() == 8 {
                break;
            }
        }
    }
    let enc = model.tokenize(&docs).unwrap();
    let tokens: usize = enc.iter().map(|e| e.len()).sum();
    let t = Instant::now();
    model.logits(&docs, &opts).unwrap();
    let s = t.elapsed().as_secs_f64();
    println!("documents: {} of {} tokens avg, {:.0} tokens/s", docs.len(), tokens / docs.len(), tokens as f64 / s);
}
