//! `dtype: 'f16'` and `'bf16'` on the CPU against PyTorch's own f16/bf16
//! (`tools/make_half_fixture.py`): on the bundled model's real weights and NorNE text, and on
//! the tiny model's random f32 weights (which f16 rounds), at window lengths from 128 to 8,192
//! tokens, ours must land at least as close to f32 as PyTorch's does: by the largest and the
//! mean logit difference, and, on the real weights, by argmax agreement (a random model's
//! near-ties make its argmax flip on any rounding, so there it says nothing).

mod common;

use std::path::{Path, PathBuf};

use eurobert::{Dtype, LoadOptions, RunOptions, TokenClassifier};
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A model with `max_position_embeddings` raised as the fixture script raised it.
fn long_model(path: &str, max_pos: u64) -> PathBuf {
    let src = root().join(path);
    let dir = common::scratch(&format!("half-{}", src.file_name().unwrap().to_string_lossy()));
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
                // The max is one element of n × labels: PyTorch's and ours move by ~1% with any
                // change of summation order or exp rounding (tiny bf16 at 8,192: 0.0362 against
                // ours 0.0362–0.0366), so it gets 2%; the mean and the agreement stay strict.
                assert!(
                    f64::from(diff) <= their_diff * 1.02,
                    "{model_name} {name} at {n} tokens: max abs diff {diff}, PyTorch's {their_diff}"
                );
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

/// q8 runs its attention in bf16 from 128 tokens on (72 on AMX-BF16 tiles), where the CPU has AVX512-BF16: on the
/// bundled model's real weights and text, its labels stay f32's up to 8,192 tokens (measured
/// with bf16 attention: ≥ 99.80% agreement, max abs diff ≤ 0.36 on Zen 4, 0.41 on a Xeon with
/// AMX, tiles or `vdpbf16ps` alike; with f32 attention 99.84–99.85%, 0.26–0.38; PyTorch's own
/// bf16 keeps 99.90%), and on the tiny model's 8,192-token fixture it stays
/// within q8's tolerance of transformers' f32 logits.
#[test]
fn q8_keeps_f32_labels_at_every_length() {
    let exp: Value = serde_json::from_str(&std::fs::read_to_string(root().join("__test__/fixtures/half.json")).unwrap()).unwrap();
    let m = &exp["models"]["norne-compact"];
    let ids: Vec<u32> = m["ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
    let dir = long_model(m["path"].as_str().unwrap(), exp["max_position_embeddings"].as_u64().unwrap());
    let load = |dtype| TokenClassifier::load(&dir, &LoadOptions { dtype, threads: Some(2), ..Default::default() }).unwrap();
    let (f32_model, q8) = (load(Dtype::F32), load(Dtype::Q8));
    let l = f32_model.config().num_labels();
    // AVX2's int8 kernel keeps 7-bit weights (see parity.rs): about twice the error (measured
    // under qemu's Haswell: 99.76% agreement at 2,048 tokens).
    let kernel = eurobert::cpu_kernels().into_iter().find(|(k, _)| *k == "gemm_int8").unwrap().1;
    let (min_agree, tol) = if kernel.contains("avx2") { (0.995, 0.2) } else { (0.997, 0.1) };
    for n in [128usize, 512, 2048, 8192] {
        let options = RunOptions { batch_size: 1, max_batch_tokens: n, ..Default::default() };
        let want = f32_model.logits_for_ids(&[&ids[..n]], &options).unwrap().remove(0);
        let got = q8.logits_for_ids(&[&ids[..n]], &options).unwrap().remove(0);
        let diff = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        let agree = got.chunks(l).zip(want.chunks(l)).filter(|(a, b)| argmax(a) == argmax(b)).count() as f64 / n as f64;
        eprintln!("q8 {n:>5} tokens: max abs diff {diff:.4}, argmax agreement {agree:.5}");
        assert!(agree >= min_agree, "q8 at {n} tokens: argmax agreement {agree}");
        assert!(diff < 0.5, "q8 at {n} tokens: max abs diff {diff}");
    }
    std::fs::remove_dir_all(&dir).unwrap();

    let exp: Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("__test__/fixtures/tiny-eurobert.long.json")).unwrap()).unwrap();
    let ids: Vec<u32> = exp["ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
    let rows: Vec<usize> = exp["rows"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
    let dir = long_model("__test__/fixtures/tiny-eurobert", exp["max_position_embeddings"].as_u64().unwrap());
    let q8 = TokenClassifier::load(&dir, &LoadOptions { dtype: Dtype::Q8, threads: Some(2), ..Default::default() }).unwrap();
    let l = q8.config().num_labels();
    let options = RunOptions { batch_size: 1, max_batch_tokens: ids.len(), ..Default::default() };
    let got = q8.logits_for_ids(&[&ids], &options).unwrap().remove(0);
    let mut worst = 0f32;
    for (r, want) in rows.iter().zip(exp["logits"].as_array().unwrap()) {
        for (j, w) in want.as_array().unwrap().iter().enumerate() {
            worst = worst.max((got[r * l + j] - w.as_f64().unwrap() as f32).abs());
        }
    }
    eprintln!("q8 on the tiny model's 8192-token window: max abs diff {worst:e} from transformers' f32");
    // parity.rs' q8 tolerance on short texts (doubled for AVX2's 7-bit weights).
    assert!(worst < tol, "max abs diff {worst}");
    std::fs::remove_dir_all(&dir).unwrap();
}
