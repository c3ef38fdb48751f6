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
        .replace("lif_membrane(v[m]", "lif_membrane(vv_nope");
    let e = shaders::validate(&bad).unwrap_err();
    assert!(e.contains("vv_nope"), "{e}");
}
