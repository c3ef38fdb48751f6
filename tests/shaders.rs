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
fn the_ensemble_kernel_validates_with_extra_synapse_types() {
    // KX > 0 is another text of the kernel (the host sets KX): one, three and the most types,
    // each on shapes with one and several quads per invocation
    for kx in [1, 3, robust_snn::snn::MAX_EXTRA_SYNAPSE_TYPES] {
        for s in shapes() {
            let s = s.with_extra_types(kx);
            if let Err(e) = shaders::validate(&shaders::ensemble(&s)) {
                panic!("lif_ensemble with KX = {kx} for {s:?}:\n{e}");
            }
        }
    }
    // and the kernels differ only in the host's constants
    let s = Shape::new(40, 8, 64);
    let (a, b) = (
        shaders::ensemble(&s),
        shaders::ensemble(&s.with_extra_types(3)),
    );
    assert!(a.contains("const KX: u32 = 0u;") && a.contains("const KXA: u32 = 1u;"));
    assert!(b.contains("const KX: u32 = 3u;") && b.contains("const KXA: u32 = 3u;"));
    assert_eq!(
        a.replace("const KX: u32 = 0u;", "")
            .replace("const KXA: u32 = 1u;", ""),
        b.replace("const KX: u32 = 3u;", "")
            .replace("const KXA: u32 = 3u;", "")
    );
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
fn the_ensemble_learning_kernels_validate_for_every_shape() {
    for s in shapes() {
        if let Err(e) = shaders::validate(&shaders::learn_ensemble(&s)) {
            panic!("learn_ensemble for {s:?}:\n{e}");
        }
    }
    for wg in [1, 64, 256] {
        if let Err(e) = shaders::validate(&shaders::learn_reduce(wg)) {
            panic!("learn_reduce for WG {wg}:\n{e}");
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

/// The longest run of consecutive lines (compared trimmed) that two sources share, and where it
/// starts in each (line numbers). Blank lines and lines of closing braces do not count: a run
/// of them is layout, not copied logic.
fn longest_shared_run(a: &str, b: &str) -> (usize, usize, usize) {
    let lines = |s: &str| -> Vec<(usize, String)> {
        s.lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.trim().to_string()))
            .filter(|(_, l)| !l.chars().all(|c| c == '}' || c.is_whitespace()))
            .collect()
    };
    let (la, lb) = (lines(a), lines(b));
    let a: Vec<&str> = la.iter().map(|l| l.1.as_str()).collect();
    let b: Vec<&str> = lb.iter().map(|l| l.1.as_str()).collect();
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
    if best.0 == 0 {
        return best;
    }
    (best.0, la[best.1 - 1].0, lb[best.2 - 1].0)
}

#[test]
fn the_kernels_share_their_step_code_through_included_files_and_copy_no_run_of_six_lines() {
    let kernels = [
        ("learn.wgsl", shaders::LEARN),
        ("lif_ensemble.wgsl", shaders::ENSEMBLE),
        ("learn_ensemble.wgsl", shaders::LEARN_ENSEMBLE),
    ];
    for (i, (na, a)) in kernels.iter().enumerate() {
        for (nb, b) in &kernels[i + 1..] {
            let (run, at_a, at_b) = longest_shared_run(a, b);
            assert!(
                run < 6,
                "{na} line {at_a} and {nb} line {at_b} share {run} lines: move them into an \
                 included file (lif_step.wgsl, chip.wgsl, rule.wgsl)"
            );
        }
    }
    // the check itself finds a copied run
    let head: Vec<&str> = shaders::LIF_STEP.lines().take(40).collect();
    let copied = format!("{}\n{}", shaders::LEARN, head.join("\n"));
    assert!(longest_shared_run(&copied, shaders::LIF_STEP).0 >= 6);
    // and every kernel uses the shared step; the learning kernels the shared rule, the chip
    // kernels the shared chip
    for (_, k) in kernels {
        for f in [
            "add_input(",
            "lif_integrate(",
            "lif_fire(",
            "pop_spike(",
            "begin_dispatch(",
        ] {
            assert!(k.contains(f), "a kernel does not call {f}");
        }
    }
    for k in [shaders::LEARN, shaders::LEARN_ENSEMBLE] {
        for f in ["project_error(", "rank1_update(", "end_learn_dispatch("] {
            assert!(k.contains(f), "a learning kernel does not call {f}");
        }
    }
    for k in [shaders::ENSEMBLE, shaders::LEARN_ENSEMBLE] {
        for f in [
            "instance_info(",
            "chip_quad(",
            "noise_and_silence(",
            "propagate_spike(",
            "decode_xs(",
        ] {
            assert!(k.contains(f), "a chip kernel does not call {f}");
        }
    }
}
