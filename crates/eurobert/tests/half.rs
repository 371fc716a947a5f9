//! `dtype: 'f16'` and `'bf16'` on the CPU against PyTorch's own f16/bf16
//! (`tools/make_half_fixture.py`): on the bundled model's real weights and NorNE text, and on
//! the tiny model's random f32 weights (which f16 rounds), at window lengths from 128 to 8,192
//! tokens, ours must land at least as close to f32 as PyTorch's does: by the largest and the
//! mean logit difference, and, on the real weights, by argmax agreement (a random model's
//! near-ties make its argmax flip on any rounding, so there it says nothing).

use std::path::{Path, PathBuf};

use eurobert::{Dtype, LoadOptions, RunOptions, TokenClassifier};
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A model with `max_position_embeddings` raised as the fixture script raised it.
fn long_model(path: &str, max_pos: u64) -> PathBuf {
    let src = root().join(path);
    let dir = std::env::temp_dir().join(format!("eurobert-half-{}-{}", std::process::id(), src.file_name().unwrap().to_string_lossy()));
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["model.safetensors", "tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    let mut cfg: Value = serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).unwrap()).unwrap();
    cfg["max_position_embeddings"] = max_pos.into();
    std::fs::write(dir.join("config.json"), cfg.to_string()).unwrap();
    dir
}

fn argmax(row: &[f32]) -> usize {
    row.iter().enumerate().fold(0, |best, (i, &v)| if v > row[best] { i } else { best })
}

#[test]
fn f16_and_bf16_are_at_least_as_close_to_f32_as_pytorchs_at_every_length() {
    let exp: Value = serde_json::from_str(&std::fs::read_to_string(root().join("__test__/fixtures/half.json")).unwrap()).unwrap();
    for (model_name, m) in exp["models"].as_object().unwrap() {
        let ids: Vec<u32> = m["ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        let dir = long_model(m["path"].as_str().unwrap(), exp["max_position_embeddings"].as_u64().unwrap());
        let load = |dtype| TokenClassifier::load(&dir, &LoadOptions { dtype, threads: Some(2), ..Default::default() }).unwrap();
        let f32_model = load(Dtype::F32);
        let halves = [("f16", load(Dtype::F16)), ("bf16", load(Dtype::BF16))];
        let l = f32_model.config().num_labels();
        for case in m["pytorch"].as_array().unwrap() {
            let n = case["length"].as_u64().unwrap() as usize;
            let options = RunOptions { batch_size: 1, max_batch_tokens: n, ..Default::default() };
            let want = f32_model.logits_for_ids(&[&ids[..n]], &options).unwrap().remove(0);
            for (name, model) in &halves {
                let got = model.logits_for_ids(&[&ids[..n]], &options).unwrap().remove(0);
                let diff = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
                let mean = got.iter().zip(&want).map(|(a, b)| f64::from((a - b).abs())).sum::<f64>() / got.len() as f64;
                let agree = got.chunks(l).zip(want.chunks(l)).filter(|(a, b)| argmax(a) == argmax(b)).count() as f64 / n as f64;
                let theirs = &case[*name];
                let their = |k: &str| theirs[k].as_f64().unwrap();
                let (their_diff, their_mean, their_agree) = (their("max_abs_diff"), their("mean_abs_diff"), their("argmax_agreement"));
                eprintln!(
                    "{model_name} {n:>5} tokens {name:>4}: max abs diff {diff:.4} (PyTorch {their_diff:.4}), mean {mean:.5} (PyTorch {their_mean:.5}), argmax agreement {agree:.5} (PyTorch {their_agree:.5})"
                );
                assert!(f64::from(diff) <= their_diff, "{model_name} {name} at {n} tokens: max abs diff {diff}, PyTorch's {their_diff}");
                assert!(mean <= their_mean, "{model_name} {name} at {n} tokens: mean abs diff {mean}, PyTorch's {their_mean}");
                if model_name != "tiny-eurobert" {
                    assert!(agree >= their_agree, "{model_name} {name} at {n} tokens: argmax agreement {agree}, PyTorch's {their_agree}");
                }
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn half_weights_take_half_the_memory() {
    let dir = root().join("models/norne-compact");
    let load = |dtype| TokenClassifier::load(&dir, &LoadOptions { dtype, threads: Some(1), ..Default::default() }).unwrap();
    let (full, half) = (load(Dtype::F32).weight_bytes(), load(Dtype::BF16).weight_bytes());
    eprintln!("weights: f32 {full} bytes, bf16 {half} bytes");
    // Everything but the norms, biases and the classifier is stored in 16 bits.
    assert!((half as f64) < 0.52 * full as f64, "bf16 keeps {half} of f32's {full} bytes");
}
