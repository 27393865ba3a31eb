//! The digits MLP trained by tensile and by PyTorch from the same initial weights
//! (`tests/pytorch/saved/digits_mlp_init.safetensors`), on the same batches in the same order,
//! with SGD: the loss curves agree within 1e-4 for the first 100 steps
//! (`make_digits_mlp_fixture.py` wrote PyTorch's).

use tensile::data::mnist::{Mnist, Split};
use tensile::data::{DataLoader, DatasetExt, transforms};
use tensile::nn::{self, Flatten, Linear, ReLU, SaveLoad};
use tensile::optim::{Optimizer, Sgd};
use tensile::prelude::*;

type Mlp = (Flatten, Linear<64, 128>, ReLU, Linear<128, 10>);

#[test]
fn the_loss_curve_matches_pytorch_for_100_steps() {
    let want: serde_json::Value =
        serde_json::from_str(include_str!("pytorch/saved/digits_mlp_losses.json")).expect("losses fixture");
    let want: Vec<f64> = want["losses"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();

    let dev = Cpu::seeded(0);
    let mut model = Mlp::build(&dev);
    model.load(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/pytorch/saved/digits_mlp_init.safetensors")).unwrap();
    let train = Mnist::<8, 8>::load(&dev, concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/digits"), Split::Train)
        .unwrap()
        .map(|(image, label)| Ok((transforms::to_float::<_, f32, _>(&image, 1.0 / 16.0), label)));
    let loader = DataLoader::new(train, 32);
    let mut opt = Optimizer::new(Sgd::new(0.1));
    let mut got = Vec::new();
    'epochs: for epoch in 0.. {
        for batch in loader.epoch(epoch) {
            let (x, y) = batch.unwrap();
            let loss = model.forward(x.trace(nn::alloc_grads(&model))).cross_entropy(&y);
            got.push(loss.to_array() as f64);
            let grads = loss.backward();
            opt.step(&mut model, &grads).unwrap();
            if got.len() == want.len() {
                break 'epochs;
            }
        }
    }
    for (step, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!((g - w).abs() <= 1e-4, "step {step}: tensile loss {g}, PyTorch {w}");
    }
    assert!(want[99] < 0.5 * want[0], "the fixture's curve falls");
}
