//! The WGSL sources and how the pipelines compose them: the host prepends the compile-time
//! shape (`const WG, QPI, ...`), then the included files, then the kernel. One function per
//! kernel builds the source the pipeline compiles, so [`validate`] (naga, wgpu's own front end)
//! checks exactly that, without an adapter.

/// Philox4x32-10 and the normal / uniform draws (twin of `chip::rng`).
pub const RNG: &str = include_str!("../../../shaders/rng.wgsl");
/// The LIF step shared by both kernels (twin of `engine::lif_step::step`) and the loop check.
pub const LIF_STEP: &str = include_str!("../../../shaders/lif_step.wgsl");
/// One simulated chip's constants, mismatched weights, noise and decoder (shared by the ensemble
/// and the ensemble learning kernel; twin of `chip::Instance`).
pub const CHIP: &str = include_str!("../../../shaders/chip.wgsl");
/// The local rule's per-step pieces (F e, the rank-1 update) shared by both learning kernels.
pub const RULE: &str = include_str!("../../../shaders/rule.wgsl");
/// The ensemble kernel.
pub const ENSEMBLE: &str = include_str!("../../../shaders/lif_ensemble.wgsl");
/// The learning kernel.
pub const LEARN: &str = include_str!("../../../shaders/learn.wgsl");
/// The mismatch-ensemble learning kernel and the kernel that adds the mean of its updates.
pub const LEARN_ENSEMBLE: &str = include_str!("../../../shaders/learn_ensemble.wgsl");
pub const LEARN_REDUCE: &str = include_str!("../../../shaders/learn_reduce.wgsl");
/// The Philox / Box-Muller test kernel.
pub const RNG_TEST: &str = include_str!("../../../shaders/rng_test.wgsl");

/// Compile-time shape of a kernel: workgroup size, neuron quads and k-quads per invocation,
/// spike-mask words, k-quads, (learning kernel) quads and the number of synapse types beyond
/// W_fast and W_slow (`kx`; only the ensemble kernel simulates them, the learning kernels
/// always have 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Shape {
    pub wg: u32,
    pub qpi: u32,
    pub kpi: u32,
    pub nw: u32,
    pub ncq: u32,
    pub nq: u32,
    pub kx: u32,
}

impl Shape {
    /// The shape for N neurons, Nc decoded dimensions and workgroup size `wg`, without extra
    /// synapse types.
    pub fn new(n: usize, nc: usize, wg: u32) -> Shape {
        let (nq, ncq) = (n.div_ceil(4) as u32, nc.div_ceil(4) as u32);
        Shape {
            wg,
            qpi: nq.div_ceil(wg),
            kpi: ncq.div_ceil(wg),
            nw: n.div_ceil(32) as u32,
            ncq,
            nq,
            kx: 0,
        }
    }

    /// This shape with `kx` extra synapse types (`Network::extra_synapses`).
    pub fn with_extra_types(mut self, kx: usize) -> Shape {
        self.kx = kx as u32;
        self
    }

    fn consts(&self) -> String {
        // KXA sizes the registers of the extra currents: WGSL has no zero-length array, and
        // with KX = 0 no loop reads them
        format!(
            "const WG: u32 = {}u;\nconst QPI: u32 = {}u;\nconst KPI: u32 = {}u;\n\
             const NW: u32 = {}u;\nconst NCQ: u32 = {}u;\nconst NQ: u32 = {}u;\n\
             const STATE_BLOCKS: u32 = {STATE_BLOCKS}u;\nconst KX: u32 = {}u;\n\
             const KXA: u32 = {}u;\n",
            self.wg,
            self.qpi,
            self.kpi,
            self.nw,
            self.ncq,
            self.nq,
            self.kx,
            self.kx.max(1)
        )
    }
}

/// Blocks of nq quads of per-neuron state that `lif_step.wgsl`'s `load_quad`/`store_quad` keep
/// (V, I_fast, I_slow, r, a); a kernel's own blocks follow them.
pub const STATE_BLOCKS: usize = 5;

/// The ensemble kernel (entry point `lif_ensemble`) for `shape`.
pub fn ensemble(shape: &Shape) -> String {
    format!("{}{RNG}\n{LIF_STEP}\n{CHIP}\n{ENSEMBLE}", shape.consts())
}

/// The mismatch-ensemble learning kernel (entry point `learn_ensemble`) for `shape`.
pub fn learn_ensemble(shape: &Shape) -> String {
    format!(
        "{}{RNG}\n{LIF_STEP}\n{CHIP}\n{RULE}\n{LEARN_ENSEMBLE}",
        shape.consts()
    )
}

/// The kernel adding an ensemble trial's mean update (entry point `learn_reduce`), workgroup
/// size `wg`.
pub fn learn_reduce(wg: u32) -> String {
    format!("const WG: u32 = {wg}u;\n{LEARN_REDUCE}")
}

/// The learning kernel (entry point `learn`) for `shape`.
pub fn learn(shape: &Shape) -> String {
    format!("{}{LIF_STEP}\n{RULE}\n{LEARN}", shape.consts())
}

/// The Philox test kernel (entry point `rng_test`).
pub fn rng_test() -> String {
    format!("{RNG}\n{RNG_TEST}")
}

/// Parses and validates `src` as wgpu would before compiling it; the error names the line.
pub fn validate(src: &str) -> Result<(), String> {
    let module = naga::front::wgsl::parse_str(src).map_err(|e| e.emit_to_string(src))?;
    naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::default(),
    )
    .validate(&module)
    .map_err(|e| e.emit_to_string(src))?;
    Ok(())
}
