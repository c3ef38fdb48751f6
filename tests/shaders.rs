//! Every WGSL kernel, composed exactly as its pipeline compiles it, parses and validates with
//! naga (wgpu's own front end) — on any machine, with or without an adapter, so a shader error
//! cannot hide on a machine where the GPU tests skip.

use robust_snn::engine::gpu::shaders::{self, Shape};

/// Shapes that cover one and several quads / k-quads per invocation and the smallest workgroup.
fn shapes() -> Vec<Shape> {
    let mut v = Vec::new();
    for (n, nc) in [(1, 1), (40, 8), (320, 64), (768, 32), (2048, 256)] {
        for wg in [1, 64, 256] {
            v.push(Shape::new(n, nc, wg));
        }
    }
    v
}

#[test]
fn the_ensemble_kernel_validates_for_every_shape() {
    for s in shapes() {
        if let Err(e) = shaders::validate(&shaders::ensemble(&s)) {
            panic!("lif_ensemble for {s:?}:\n{e}");
        }
    }
}

#[test]
fn the_learning_kernel_validates_for_every_shape() {
    for s in shapes() {
        if let Err(e) = shaders::validate(&shaders::learn(&s)) {
            panic!("learn for {s:?}:\n{e}");
        }
    }
}

#[test]
fn the_rng_test_kernel_validates() {
    shaders::validate(&shaders::rng_test()).unwrap();
}

#[test]
fn a_broken_shader_is_reported_with_its_line() {
    let bad = shaders::ensemble(&Shape::new(40, 8, 64))
        .replace("lif_integrate(nrn[m]", "lif_integrate(vv_nope");
    let e = shaders::validate(&bad).unwrap_err();
    assert!(e.contains("vv_nope"), "{e}");
}

/// The longest run of consecutive lines (compared trimmed) that two sources share.
fn longest_shared_run(a: &str, b: &str) -> (usize, usize, usize) {
    let a: Vec<&str> = a.lines().map(str::trim).collect();
    let b: Vec<&str> = b.lines().map(str::trim).collect();
    // run[j] = length of the common run ending at (i, j)
    let mut best = (0, 0, 0);
    let mut prev = vec![0usize; b.len() + 1];
    for i in 1..=a.len() {
        let mut cur = vec![0usize; b.len() + 1];
        for j in 1..=b.len() {
            if a[i - 1] == b[j - 1] {
                cur[j] = prev[j - 1] + 1;
                if cur[j] > best.0 {
                    best = (cur[j], i - cur[j] + 1, j - cur[j] + 1);
                }
            }
        }
        prev = cur;
    }
    best
}

#[test]
fn the_kernels_share_their_step_code_through_lif_step_and_copy_no_run_of_six_lines() {
    let (run, at_learn, at_ens) = longest_shared_run(shaders::LEARN, shaders::ENSEMBLE);
    assert!(
        run < 6,
        "learn.wgsl line {at_learn} and lif_ensemble.wgsl line {at_ens} share {run} lines: move \
         them into lif_step.wgsl"
    );
    // the check itself finds a copied run
    let head: Vec<&str> = shaders::LIF_STEP.lines().take(40).collect();
    let copied = format!("{}\n{}", shaders::LEARN, head.join("\n"));
    assert!(longest_shared_run(&copied, shaders::LIF_STEP).0 >= 6);
    // and both kernels use the shared step
    for k in [shaders::LEARN, shaders::ENSEMBLE] {
        for f in [
            "add_input(",
            "lif_integrate(",
            "lif_fire(",
            "pop_spike(",
            "store_state(",
        ] {
            assert!(k.contains(f), "a kernel does not call {f}");
        }
    }
}
