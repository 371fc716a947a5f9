//! One 8,192-token window (EuroBERT's default window) on the tiny fixture model: logits
//! against transformers' (`tools/make_long_fixture.py`), and the memory the pass takes against
//! a bound from the model's shape, which a `tokens × tokens` attention matrix would break.

mod common;

use std::path::{Path, PathBuf};

use eurobert::{LoadOptions, RunOptions, TokenClassifier};
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../__test__/fixtures")
}

/// The fixture model with `max_position_embeddings` raised as the fixture script raised it.
fn long_model(max_pos: u64) -> PathBuf {
    let src = fixtures().join("tiny-eurobert");
    let dir = common::scratch("long");
    for f in ["model.safetensors", "tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    let mut cfg: Value = serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).unwrap()).unwrap();
    cfg["max_position_embeddings"] = max_pos.into();
    std::fs::write(dir.join("config.json"), cfg.to_string()).unwrap();
    dir
}

/// `VmRSS`/`VmHWM` of this process in bytes.
#[cfg(target_os = "linux")]
fn status(field: &str) -> usize {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = s.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<usize>().unwrap() * 1024
}

#[test]
fn an_8192_token_window_matches_transformers_in_memory_linear_in_its_length() {
    let exp: Value = serde_json::from_str(&std::fs::read_to_string(fixtures().join("tiny-eurobert.long.json")).unwrap()).unwrap();
    let ids: Vec<u32> = exp["ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
    let rows: Vec<usize> = exp["rows"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
    let dir = long_model(exp["max_position_embeddings"].as_u64().unwrap());
    let model = TokenClassifier::load(&dir, &LoadOptions { threads: Some(2), ..Default::default() }).unwrap();
    let c = model.config().clone();
    let options = RunOptions { batch_size: 1, max_batch_tokens: ids.len(), ..Default::default() };

    #[cfg(target_os = "linux")]
    std::fs::write("/proc/self/clear_refs", "5").unwrap(); // peak RSS := current RSS
    #[cfg(target_os = "linux")]
    let before = status("VmRSS:");
    let logits = model.logits_for_ids(&[&ids], &options).unwrap().remove(0);
    #[cfg(target_os = "linux")]
    {
        let used = status("VmHWM:") - before;
        // What the pass must hold per token: the residual stream, normed input, attention
        // output, fused QKV rows and logits, f32; plus the MLP's fixed-size chunk and room for
        // the allocator. A scores matrix would need tokens² × heads × 4 bytes.
        let qkv = (c.num_attention_heads + 2 * c.num_key_value_heads) * c.head_dim;
        let per_token = 4 * (3 * c.hidden_size + qkv + c.num_attention_heads * c.head_dim + c.num_labels());
        let bound = 2 * per_token * ids.len() + (32 << 20);
        let square = ids.len() * ids.len() * c.num_attention_heads * 4;
        eprintln!(
            "8192-token pass: {} MB above the loaded model (bound {} MB; a score matrix alone: {} MB)",
            used >> 20,
            bound >> 20,
            square >> 20
        );
        assert!(used < bound, "the pass took {used} bytes, over the bound of {bound}");
    }

    let l = c.num_labels();
    let mut worst = 0f32;
    for (r, want) in rows.iter().zip(exp["logits"].as_array().unwrap()) {
        for (j, w) in want.as_array().unwrap().iter().enumerate() {
            worst = worst.max((logits[r * l + j] - w.as_f64().unwrap() as f32).abs());
        }
    }
    eprintln!("8192-token window: max abs diff {worst:e} over {} rows", rows.len());
    assert!(worst < 1e-5, "max abs diff {worst}");
    std::fs::remove_dir_all(&dir).unwrap();
}
