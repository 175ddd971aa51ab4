//! One shape inference (`salient_ir::shape`) for the checker and the network: the parameter
//! count `salient check` reports is the number of trainable values the built network has, and a
//! model written by hand through `salient_nn::layers::infer` equals the checker's.
use dfdx::prelude::*;
use salient_nn::layers::infer::model_def;
use salient_nn::Network;

/// A CIFAR-style ResNet stage: batchnorm, an identity block and a downsampling block whose
/// shortcut is a bias-free 1x1 stride-2 projection (8 -> 16 channels).
const RESNET: &str = r#"
experiment shapes
data synthetic { shape = (3, 16, 16)  classes = 10  train = 64  test = 32  noise = 0.2  seed = 1 }
model resnet {
  conv(out = 8, kernel = 3, padding = 1)
  batchnorm
  relu
  residual(body = (conv(out = 8, kernel = 3, padding = 1), batchnorm, relu,
                   conv(out = 8, kernel = 3, padding = 1)))
  residual(body = (conv(out = 16, kernel = 3, stride = 2, padding = 1), relu,
                   conv(out = 16, kernel = 3, padding = 1)))
  avgpool(size = 8)
  flatten
  dense(out = 10)
}
train { optimizer = sgd  lr = 0.1  epochs = 1  batch = 16  seed = 0 }
regime standard
"#;

#[test]
fn the_checked_parameter_count_is_the_networks() {
    let out = salient_lang::check("shapes.exp", RESNET);
    let msgs: Vec<String> = out.diagnostics.iter().map(|d| d.message.clone()).collect();
    let exp = out.experiment.unwrap_or_else(|| panic!("{msgs:?}"));
    let def = &exp.models[0];
    let dev = Cpu::default();
    let net = Network::new(def, &exp.data.mean, &exp.data.std, 0, &dev).unwrap();
    let trainable: usize = net
        .params()
        .iter()
        .filter(|p| p.trainable)
        .map(|p| p.value.shape().0)
        .sum();
    // By hand: stem conv 3*3*3*8+8 = 224, bn 16; block 1: 584 + 16 + 584; block 2:
    // 3*3*8*16+16 = 1168, 3*3*16*16+16 = 2320, projection 8*16 = 128 (no bias); dense 16*10+10.
    let by_hand = 224 + 16 + (584 + 16 + 584) + (1168 + 2320 + 128) + 170;
    assert_eq!(def.params, by_hand, "the checker's count");
    assert_eq!(trainable, by_hand, "the network's trainable values");

    // The same layers through the hand-written path give the same definition.
    let kinds = def.layers.iter().map(|l| l.kind.clone()).collect();
    let again = model_def(&def.name, def.input, kinds).unwrap();
    assert_eq!(&again, def);
}
