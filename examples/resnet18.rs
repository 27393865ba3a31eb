//! ResNet-18 as types, with torchvision's layout and parameter names (`layer2.0.downsample.0.weight`),
//! so a `resnet18().state_dict()` saved as safetensors loads into it. Every spatial size after
//! the input is computed by the types, and each residual sum meets two differently computed
//! dims of equal size, checked at build time.
//!
//! ```sh
//! cargo run --release --example resnet18
//! ```
//! builds the model, checks its parameter count against torchvision's (11,689,512), and times
//! a forward pass and a training step on a batch of 224 x 224 images.

#[path = "common/resnet18.rs"]
mod resnet18;

use resnet18::{Pixels, ResNet18};
use std::time::Instant;
use tensile::nn;
use tensile::prelude::*;

fn main() -> Result<()> {
    let dev = Cpu::seeded(0);
    let model = ResNet18::build(&dev);
    let params = nn::num_params(&model);
    let names = nn::named_tensors(&model);
    println!("ResNet-18: {params} parameters, {} state_dict entries (torchvision: 11689512 and 122)", names.len());
    assert_eq!(names.len(), 122);
    assert_eq!(params, 11_689_512);
    assert!(names.iter().any(|(n, _, _)| n == "layer2.0.downsample.0.weight"));

    let batch = 8;
    let images: Pixels<NoTape> = dev.randn_like(&(batch, Const, Const, Const));
    let start = Instant::now();
    let logits = model.try_forward(images.clone())?;
    println!("inference, batch {batch}: {:?} in {:.0} ms", logits.dims(), start.elapsed().as_secs_f64() * 1e3);

    let labels: Tensor<(usize,), i64, Cpu> = dev.from_vec((0..batch as i64).collect(), (batch,));
    let start = Instant::now();
    let loss = model.try_forward(images.trace(nn::alloc_grads(&model)))?.try_cross_entropy(&labels)?;
    let grads = loss.clone().backward();
    println!(
        "training step (forward + backward), batch {batch}: loss {:.3} in {:.0} ms; fc grad norm {:.3}",
        loss.to_array(),
        start.elapsed().as_secs_f64() * 1e3,
        grads.get(&model.fc.weight).square().sum::<Rank0, _>().to_array().sqrt()
    );
    Ok(())
}
