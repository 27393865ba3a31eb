//! A two-layer perceptron learns the bundled handwritten digits (1437 training and 360 test
//! images of 8 x 8 pixels).
//!
//! ```sh
//! cargo run --release --example digits_mlp
//! ```

#[path = "common/digits.rs"]
mod digits;

use tensile::nn::{Flatten, Linear, ReLU};
use tensile::prelude::*;

type Mlp = (Flatten, Linear<64, 128>, ReLU, Linear<128, 10>);

fn main() -> Result<()> {
    let mut model = Mlp::build(&Cpu::seeded(0));
    let (accuracy, _) = digits::train("digits MLP", &mut model, 20, 3e-3)?;
    digits::save_and_reload(&model, &mut Mlp::build(&Cpu::seeded(1)), accuracy, "digits_mlp.safetensors")?;
    Ok(())
}
