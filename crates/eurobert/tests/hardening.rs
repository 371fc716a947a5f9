//! Model folders that once crashed the process, ate gigabytes or loaded into garbage: each
//! now fails at load with an error naming the file and what is wrong, or loads with a warning.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use eurobert::{Dtype, LoadOptions, RunOptions, TokenClassifier};
use safetensors::tensor::{SafeTensors, TensorView};
use serde_json::Value;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../__test__/fixtures/tiny-eurobert")
}

/// A copy of the tiny model in a fresh folder.
fn copy(name: &str) -> PathBuf {
    let dir = common::scratch(&format!("hard-{name}"));
    for f in ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(fixture().join(f), dir.join(f)).unwrap();
    }
    dir
}

fn edit_config(dir: &Path, edit: impl FnOnce(&mut Value)) {
    let mut c: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    edit(&mut c);
    std::fs::write(dir.join("config.json"), c.to_string()).unwrap();
}

/// Rewrites model.safetensors with `edit` applied to (name -> (dtype, shape, bytes)).
fn edit_weights(dir: &Path, edit: impl FnOnce(&mut HashMap<String, (safetensors::Dtype, Vec<usize>, Vec<u8>)>)) {
    let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut t: HashMap<String, (safetensors::Dtype, Vec<usize>, Vec<u8>)> =
        st.tensors().into_iter().map(|(n, v)| (n, (v.dtype(), v.shape().to_vec(), v.data().to_vec()))).collect();
    edit(&mut t);
    let views: HashMap<String, TensorView> =
        t.iter().map(|(n, (d, s, b))| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap())).collect();
    safetensors::tensor::serialize_to_file(views, None, &dir.join("model.safetensors")).unwrap();
}

fn load(dir: &Path) -> eurobert::Result<TokenClassifier> {
    TokenClassifier::load(dir, &LoadOptions { threads: Some(1), ..Default::default() })
}

fn load_err(dir: &Path) -> String {
    match load(dir) {
        Ok(_) => panic!("{} loaded but should not", dir.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn absurd_sizes_in_config_json_are_refused_before_any_allocation() {
    for (field, value, needle) in [
        ("num_hidden_layers", 1u64 << 40, "num_hidden_layers 1099511627776 is out of range"),
        ("num_hidden_layers", 1u64 << 62, "num_hidden_layers 4611686018427387904 is out of range"),
        ("max_position_embeddings", (1u64 << 32) + 256, "max_position_embeddings 4294967552 is out of range"),
        ("max_position_embeddings", 1u64 << 40, "max_position_embeddings 1099511627776 is out of range"),
    ] {
        let dir = copy("sizes");
        edit_config(&dir, |c| c[field] = value.into());
        let err = load_err(&dir);
        assert!(err.contains(needle) && err.contains("config.json"), "{field}={value}: {err}");
    }
    let dir = copy("labels");
    edit_config(&dir, |c| {
        c.as_object_mut().unwrap().remove("id2label");
        c.as_object_mut().unwrap().remove("label2id");
        c["num_labels"] = (1u64 << 40).into();
    });
    // Natively "... without id2label is out of range"; 32-bit targets (WebAssembly) refuse the
    // number itself as "out of range for this platform".
    let err = load_err(&dir);
    assert!(err.contains("num_labels 1099511627776") && err.contains("out of range"), "{err}");
}

#[test]
fn a_large_max_position_embeddings_costs_nothing_until_used() {
    // 67,108,864 positions once built >4 GB of RoPE tables at load; now tables grow with use.
    let dir = copy("maxpos");
    edit_config(&dir, |c| c["max_position_embeddings"] = 67_108_864u64.into());
    let model = load(&dir).unwrap();
    let out = model.logits(&["Oslo".into()], &RunOptions::default()).unwrap();
    assert_eq!(out[0].logits.len(), out[0].encoded.len() * 19);
}

#[test]
fn values_that_make_garbage_are_refused() {
    let dir = copy("eps");
    edit_config(&dir, |c| c["rms_norm_eps"] = 0.0.into());
    assert!(load_err(&dir).contains("rms_norm_eps must be a small positive number"));
    let dir = copy("theta");
    edit_config(&dir, |c| c["rope_parameters"]["rope_theta"] = 1e308.into());
    assert!(load_err(&dir).contains("rope_theta must be a finite number"));
    let dir = copy("nan");
    edit_weights(&dir, |t| {
        let w = &mut t.get_mut("model.layers.1.mlp.down_proj.weight").unwrap().2;
        w[40..44].copy_from_slice(&f32::NAN.to_le_bytes());
    });
    let err = load_err(&dir);
    assert!(err.contains("'model.layers.1.mlp.down_proj.weight' holds a non-finite value") && err.contains("flat index 10"), "{err}");
    let dir = copy("dup");
    edit_config(&dir, |c| c["id2label"]["+1"] = "B-PER".into());
    assert!(load_err(&dir).contains("id2label"));
}

#[test]
fn layer_counts_must_match_and_unused_tensors_load_with_a_warning() {
    let dir = copy("fewer");
    edit_config(&dir, |c| c["num_hidden_layers"] = 2.into());
    let err = load_err(&dir);
    assert!(err.contains("config.json") && err.contains("tensors of model.layers.2 but num_hidden_layers is 2"), "{err}");
    let dir = copy("more");
    edit_config(&dir, |c| c["num_hidden_layers"] = 5.into());
    assert!(load_err(&dir).contains("num_hidden_layers is 5 but the checkpoint has tensors for 3 layers (no model.layers.3)"));

    let dir = copy("lm_head");
    edit_weights(&dir, |t| {
        t.insert("lm_head.weight".into(), (safetensors::Dtype::F32, vec![2, 64], vec![0; 2 * 64 * 4]));
        t.insert("model.pooler.dense.weight".into(), (safetensors::Dtype::F32, vec![4], vec![0; 16]));
    });
    let model = load(&dir).unwrap();
    assert_eq!(model.warnings().len(), 1);
    assert!(
        model.warnings()[0].contains("2 tensor(s)") && model.warnings()[0].contains("lm_head.weight, model.pooler.dense.weight"),
        "{:?}",
        model.warnings()
    );
    assert!(load(&fixture()).unwrap().warnings().is_empty());
}

#[test]
fn files_that_are_not_regular_files_fail_fast() {
    let dir = copy("dirweights");
    std::fs::remove_file(dir.join("model.safetensors")).unwrap();
    std::fs::create_dir(dir.join("model.safetensors")).unwrap();
    let err = load_err(&dir);
    assert!(err.contains("model.safetensors") && err.contains("is a directory"), "{err}");

    #[cfg(unix)]
    for file in ["config.json", "tokenizer_config.json", "tokenizer.json"] {
        let dir = copy("devzero");
        std::fs::remove_file(dir.join(file)).unwrap();
        std::os::unix::fs::symlink("/dev/zero", dir.join(file)).unwrap();
        let err = load_err(&dir);
        assert!(err.contains(file) && err.contains("not a regular file"), "{file}: {err}");

        let dir = copy("fifo");
        std::fs::remove_file(dir.join(file)).unwrap();
        let status = std::process::Command::new("mkfifo").arg(dir.join(file)).status().unwrap();
        assert!(status.success());
        let started = std::time::Instant::now();
        let err = load_err(&dir);
        assert!(err.contains(file) && err.contains("not a regular file"), "{file}: {err}");
        assert!(started.elapsed().as_secs() < 5, "a FIFO must not block the load");
    }
}

#[test]
fn a_post_processor_with_unknown_special_tokens_fails_at_load() {
    let dir = copy("postproc");
    let mut tok: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("tokenizer.json")).unwrap()).unwrap();
    tok["post_processor"]["processors"][1]["special_tokens"] = serde_json::json!({});
    std::fs::write(dir.join("tokenizer.json"), tok.to_string()).unwrap();
    let err = load_err(&dir);
    assert!(err.contains("tokenizer.json") && err.contains("post-processor"), "{err}");
}

#[test]
fn absurd_thread_counts_are_refused() {
    let err = TokenClassifier::load(&fixture(), &LoadOptions { threads: Some(100_000), ..Default::default() }).err().unwrap();
    assert!(err.to_string().contains("threads must be at most") && err.to_string().contains("got 100000"), "{err}");
}

#[test]
fn padded_f16_batches_on_the_candle_path_stay_close_to_transformers() {
    let exp: Value = serde_json::from_str(&std::fs::read_to_string(fixture().join("../tiny-eurobert.expected.json")).unwrap()).unwrap();
    let texts: Vec<String> = exp["batch"]["texts"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()).collect();
    let model = TokenClassifier::load(&fixture(), &LoadOptions { dtype: Dtype::F16, threads: Some(2), ..Default::default() }).unwrap();
    // One padded batch and many small ones: padding must not move any real token's logits.
    let one = model.logits(&texts, &RunOptions { batch_size: 64, max_batch_tokens: 1 << 20, ..Default::default() }).unwrap();
    let small = model.logits(&texts, &RunOptions { batch_size: 3, max_batch_tokens: 64, ..Default::default() }).unwrap();
    let mut worst = 0f32;
    for (i, (a, b)) in one.iter().zip(&small).enumerate() {
        let want: Vec<f32> = exp["batch"]["logits"][i]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r.as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32))
            .collect();
        assert_eq!(a.logits.len(), want.len());
        for ((x, y), w) in a.logits.iter().zip(&b.logits).zip(&want) {
            worst = worst.max((x - w).abs());
            assert!((x - y).abs() < 2e-2, "row {i}: batching changed an f16 logit by {}", (x - y).abs());
        }
    }
    eprintln!("f16 padded batch vs transformers f32: max abs diff {worst:e}");
    assert!(worst < 2e-2, "f16 drift {worst}");
}
