//! The README's digits CNN as a type, shared by `examples/digits_cnn.rs`, `examples/export.rs`
//! and `benches/export.rs`.

use tensile::nn::{Conv2d, Flatten, Linear, MaxPool2d, ReLU};

/// 8x8 -> conv 3x3 (pad 1) -> pool -> 4x4 -> conv 3x3 -> pool -> 2x2 x 64 = 256 features,
/// all computed by the types: `Linear<256, 128>` is checked at build time.
pub type DigitsCnn = (
    Conv2d<1, 32, 3, 1, 1>,
    ReLU,
    MaxPool2d<2>,
    Conv2d<32, 64, 3, 1, 1>,
    ReLU,
    MaxPool2d<2>,
    Flatten,
    Linear<256, 128>,
    ReLU,
    Linear<128, 10>,
);
