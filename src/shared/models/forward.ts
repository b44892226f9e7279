/**
 * Forward pass of a tfjs-layers Sequential for gradient computation, with the
 * Conv2D and Dense layers run as plain tf.conv2d / tf.matMul plus a bias add.
 *
 * Why: tfjs-layers runs Conv2D and Dense through tf.fused.conv2d/matMul, and
 * their gradient is a customGrad that computes the gradient of every input,
 * needed or not. tfjs's own conv2d and matMul gradients are lazy: the tape
 * only evaluates those that lead to the variables being differentiated. On
 * DCGAN-MNIST at batch 64 the fused path wasted, per step, D's two filter
 * gradients in the G phase (~85 ms), the gradient with respect to the images
 * in the D phase (~15 ms) and G's dense-layer gradient with respect to z.
 * Every other layer (BatchNormalization, Conv2DTranspose, LeakyReLU,
 * Reshape, Flatten, …) runs through its own layer.apply, so BN keeps its
 * training-mode semantics and moving-statistics update.
 *
 * The variables read are the layers' own (the positional layout of
 * variables.ts is unchanged); only the summation order of the bias differs
 * from the fused kernels, so results agree to float32 rounding.
 */
import { tf, tfl } from '../compute/tf.js';

type Sequential = ReturnType<typeof tfl.sequential>;
type Layer = Sequential['layers'][number];

function weight(layer: Layer, role: 'kernel' | 'bias'): tf.Tensor | undefined {
  const v = layer.trainableWeights.find((w) => w.originalName.endsWith(`/${role}`));
  return v === undefined ? undefined : (v.read() as tf.Tensor);
}

function activate(x: tf.Tensor, name: unknown, layer: Layer): tf.Tensor {
  switch (name) {
    case undefined:
    case null:
    case 'linear':
      return x;
    case 'tanh':
      return tf.tanh(x);
    case 'relu':
      return tf.relu(x);
    case 'sigmoid':
      return tf.sigmoid(x);
    default:
      throw new Error(`applyUnfused: layer ${layer.name} has activation ${JSON.stringify(name)}, which is not supported here`);
  }
}

function conv2d(layer: Layer, x: tf.Tensor): tf.Tensor {
  const c = layer.getConfig() as { strides: [number, number]; padding: string; dataFormat: string; dilationRate: [number, number]; activation: unknown };
  if (c.dataFormat !== 'channelsLast' || (c.padding !== 'same' && c.padding !== 'valid') || x.rank !== 4) {
    return layer.apply(x) as tf.Tensor;
  }
  const kernel = weight(layer, 'kernel');
  if (kernel === undefined) throw new Error(`applyUnfused: Conv2D layer ${layer.name} has no kernel`);
  let y = tf.conv2d(x as tf.Tensor4D, kernel as tf.Tensor4D, c.strides, c.padding, 'NHWC', c.dilationRate);
  const bias = weight(layer, 'bias');
  if (bias !== undefined) y = tf.add(y, bias);
  return activate(y, c.activation, layer);
}

function dense(layer: Layer, x: tf.Tensor): tf.Tensor {
  if (x.rank !== 2) return layer.apply(x) as tf.Tensor;
  const c = layer.getConfig() as { activation: unknown };
  const kernel = weight(layer, 'kernel');
  if (kernel === undefined) throw new Error(`applyUnfused: Dense layer ${layer.name} has no kernel`);
  let y = tf.matMul(x as tf.Tensor2D, kernel as tf.Tensor2D);
  const bias = weight(layer, 'bias');
  if (bias !== undefined) y = tf.add(y, bias);
  return activate(y, c.activation, layer);
}

/** The model's output for `x` (training-mode BN when `training`), without fused conv/matmul ops. */
export function applyUnfused(model: Sequential, x: tf.Tensor, training: boolean): tf.Tensor {
  return tf.tidy(() => {
    let y = x;
    for (const layer of model.layers) {
      switch (layer.getClassName()) {
        case 'Conv2D':
          y = conv2d(layer, y);
          break;
        case 'Dense':
          y = dense(layer, y);
          break;
        default:
          y = layer.apply(y, { training }) as tf.Tensor;
      }
    }
    return y;
  });
}
