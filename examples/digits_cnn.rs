//! A convolutional network, written as a type, learns the bundled handwritten digits (1437
//! training and 360 test images of 8 x 8 pixels): the README's main command.
//!
//! ```sh
//! cargo run --release --example digits_cnn
//! ```

#[path = "common/digits.rs"]
mod digits;

use tensile::nn::{Conv2d, Flatten, Linear, MaxPool2d, ReLU};
use tensile::prelude::*;

/// 8x8 -> conv 3x3 (pad 1) -> pool -> 4x4 -> conv 3x3 -> pool -> 2x2 x 64 = 256 features,
/// all computed by the types: `Linear<256, 128>` is checked at build time.
type Cnn = (
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

fn main() -> Result<()> {
    let mut model = Cnn::build(&Cpu::seeded(0));
    let (accuracy, reached) = digits::train("digits CNN", &mut model, 12, 2e-3)?;
    digits::save_and_reload(&model, &mut Cnn::build(&Cpu::seeded(1)), accuracy, "digits_cnn.safetensors")?;
    assert!(reached.is_some(), "the CNN should pass 97 % test accuracy");
    Ok(())
}
