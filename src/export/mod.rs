//! Export: trace a model's forward pass into a static [`Graph`], and run the graph later
//! without the model's types ([`Runtime`]).
//!
//! Because shapes live in the types, a traced graph is fully static: every value's dims are
//! known, the input signature is fixed, and a graph can be checked node by node
//! ([`Graph::validate`]) when it is built, loaded or rewritten.
//!
//! ```
//! use tensile::prelude::*;
//! use tensile::nn;
//! use tensile::export::{Runtime, trace};
//! let dev = Cpu::seeded(0);
//! let model: (nn::Linear<4, 8>, nn::ReLU, nn::Linear<8, 2>) = BuildOn::build(&dev);
//! let x: Tensor<Rank2<5, 4>, f32, Cpu> = dev.randn();
//! let graph = trace(&model, &x).unwrap();          // Linear, ReLU, Linear as graph nodes
//! println!("{graph}");                             // the text form
//! let y = Runtime::new(&graph).unwrap().run_one(&x).unwrap();
//! assert_eq!(y.dims(), &[5, 2]);
//! ```

mod file;
mod ir;
mod onnx;
mod passes;
mod runtime;
mod text;
mod trace;

pub use ir::{Constant, Graph, IR_VERSION, Node, Op, Port, Source, Step, ValueId, ValueInfo};
pub use onnx::ONNX_OPSET;
pub use passes::{
    MemoryPlan, dead_code, fold_constants, fold_conv_affine, fuse_elementwise, fuse_linear, memory_plan, optimize,
};
pub use runtime::{Element, Runtime, Value};
pub use trace::{TraceTape, TracedOutputs, Tracer, trace};
