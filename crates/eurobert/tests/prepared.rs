//! Windows prepared before any forward pass: their cost, running them in pieces that share
//! forward passes with other calls, budgets, and cancellation.

use std::path::{Path, PathBuf};

use eurobert::{Cancel, Error, LoadOptions, RunOptions, TokenClassifier, WindowOptions};

fn load() -> TokenClassifier {
    let dir: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../__test__/fixtures/tiny-eurobert");
    TokenClassifier::load(&dir, &LoadOptions { threads: Some(2), ..Default::default() }).unwrap()
}

fn long_text() -> String {
    "Erna Solberg besøkte Oslo og Bergen med Jonas Gahr Støre. ".repeat(12)
}

fn windowed(max_length: usize, stride: usize) -> WindowOptions {
    WindowOptions { max_length: Some(max_length), stride: Some(stride), ..Default::default() }
}

#[test]
fn cost_is_the_tokens_the_windows_run() {
    let model = load();
    let texts = vec![long_text(), "Oslo".to_string()];
    let p = model.prepare(&texts, &windowed(32, 8)).unwrap();
    let lens: Vec<usize> = (0..p.window_count()).map(|i| p.window_len(i)).collect();
    assert!(p.text_windows(0).len() > 1, "the long text is cut into windows");
    assert_eq!(p.text_windows(1).len(), 1);
    assert_eq!(p.cost(0..2), lens.iter().sum::<usize>());
    assert_eq!(p.cost(1..2), p.text_tokens(1), "a text that fits costs its own tokens");
    // Every window holds at most max_length tokens; the overlap makes the cost exceed the text.
    assert!(lens.iter().all(|&l| l <= 32));
    assert!(p.cost(0..1) > p.text_tokens(0));
    // A smaller step (larger stride) costs more for the same text: what a budget must see.
    let dense = model.prepare(&texts[..1], &windowed(32, 28)).unwrap();
    assert!(dense.cost(0..1) > 3 * p.cost(0..1), "{} vs {}", dense.cost(0..1), p.cost(0..1));
}

#[test]
fn pieces_run_in_any_order_and_merged_with_other_calls_equal_one_call() {
    let model = load();
    let (a, b) = (vec![long_text()], vec!["Jonas Gahr Støre i Stavanger.".to_string(), long_text()]);
    let o = windowed(32, 8);
    let whole_a = model.score_windows(&a, &o).unwrap();
    let whole_b = model.score_windows(&b, &o).unwrap();
    let (mut pa, mut pb) = (model.prepare(&a, &o).unwrap(), model.prepare(&b, &o).unwrap());
    let (na, nb) = (pa.window_count(), pb.window_count());
    // Later windows first, and each step mixes both calls, as a fair scheduler does.
    let run = RunOptions::default();
    model.run_windows(&mut [(&mut pa, na / 2..na), (&mut pb, 0..1)], &run).unwrap();
    assert!(pa.take(0..1).is_err(), "a text whose windows have not all run cannot be taken");
    model.run_windows(&mut [(&mut pb, 1..nb), (&mut pa, 0..na / 2)], &run).unwrap();
    let (got_a, got_b) = (pa.take(0..1).unwrap(), pb.take(0..2).unwrap());
    for (got, want) in got_a.iter().chain(&got_b).zip(whole_a.iter().chain(&whole_b)) {
        assert_eq!(got.encoded, want.encoded);
        assert_eq!(got.windows.len(), want.windows.len());
        for (g, w) in got.windows.iter().zip(&want.windows) {
            assert_eq!(g.window, w.window);
            let worst = g.logits.iter().zip(&w.logits).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
            assert!(worst < 1e-5, "{worst}");
        }
    }
}

#[test]
fn a_budget_refuses_before_any_forward_pass() {
    let model = load();
    let texts = vec![long_text()];
    let cost = model.prepare(&texts, &windowed(32, 28)).unwrap().cost(0..1);
    let over = WindowOptions { max_tokens: Some(cost - 1), ..windowed(32, 28) };
    match model.score_windows(&texts, &over) {
        Err(Error::TooLarge(m)) => assert!(m.contains(&format!("would run {cost} tokens; the limit is {}", cost - 1)), "{m}"),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    let exact = WindowOptions { max_tokens: Some(cost), ..windowed(32, 28) };
    assert!(model.score_windows(&texts, &exact).is_ok());
}

#[test]
fn a_cancelled_call_stops_and_the_model_stays_usable() {
    let model = load();
    let texts = vec![long_text(); 4];
    let cancel = Cancel::new();
    cancel.cancel();
    let o = WindowOptions { run: RunOptions { cancel: cancel.clone(), batch_size: 1, ..Default::default() }, ..windowed(32, 8) };
    assert!(matches!(model.score_windows(&texts, &o), Err(Error::Cancelled)));
    let ids: Vec<u32> = vec![0, 5, 6, 1];
    assert!(matches!(model.logits_for_ids(&[&ids], &o.run), Err(Error::Cancelled)));
    // Cancelled from another thread halfway through what a tenth of the work takes.
    let cancel = Cancel::new();
    let run = RunOptions { cancel: cancel.clone(), batch_size: 1, max_batch_tokens: 64 };
    let many: Vec<String> = (0..100).map(|i| format!("{} {i}", long_text())).collect();
    let o = WindowOptions { run, ..windowed(64, 8) };
    let started = std::time::Instant::now();
    let whole = model.score_windows(
        &many[..10],
        &WindowOptions { run: RunOptions { batch_size: 1, max_batch_tokens: 64, ..Default::default() }, ..windowed(64, 8) },
    );
    let tenth = started.elapsed();
    assert!(whole.is_ok());
    let outcome = std::thread::scope(|s| {
        let h = s.spawn(|| model.score_windows(&many, &o));
        std::thread::sleep(tenth / 2);
        cancel.cancel();
        h.join().unwrap()
    });
    // Cancelled, not Ok: it stopped before its last window.
    assert!(matches!(outcome, Err(Error::Cancelled)), "{outcome:?}");
    assert_eq!(model.score_windows(&["Oslo".to_string()], &WindowOptions::default()).unwrap().len(), 1);
}

#[test]
fn stride_equal_to_the_budget_is_taken_when_the_text_fits() {
    let model = load();
    let text = vec!["Erna Solberg besøkte Oslo.".to_string()];
    let window = model.model_max_length();
    // The tiny model adds BOS and EOS: its budget is the window less 2.
    assert_eq!(model.score_windows(&text, &WindowOptions { stride: Some(window - 2), ..Default::default() }).unwrap().len(), 1);
    let err = model.score_windows(&text, &WindowOptions { stride: Some(window - 1), ..Default::default() }).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
}
