//! A convolutional network, written as a type, learns the bundled handwritten digits (1437
//! training and 360 test images of 8 x 8 pixels): the README's main command.
//!
//! ```sh
//! cargo run --release --example digits_cnn
//! ```

#[path = "common/digits.rs"]
mod digits;
#[path = "common/digits_cnn.rs"]
mod digits_cnn;

use digits_cnn::DigitsCnn as Cnn;

use tensile::prelude::*;

fn main() -> Result<()> {
    let mut model = Cnn::build(&Cpu::seeded(0));
    let (accuracy, reached) = digits::train("digits CNN", &mut model, 12, 2e-3)?;
    digits::save_and_reload(&model, &mut Cnn::build(&Cpu::seeded(1)), accuracy, "digits_cnn.safetensors")?;
    assert!(reached.is_some(), "the CNN should pass 97 % test accuracy");
    Ok(())
}
