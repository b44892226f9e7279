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

function weight(layer: Layer, role: 'kernel' | 'bias' | 'gamma' | 'beta'): tf.Tensor | undefined {
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

function stateVariable(layer: Layer, role: 'moving_mean' | 'moving_variance'): tf.Variable | undefined {
  const v = layer.weights.find((w) => w.originalName.endsWith(`/${role}`));
  return v === undefined ? undefined : (v.read() as tf.Variable);
}

/**
 * Training-mode batch normalisation over every axis but the last, with the
 * closed-form gradient (one op per term) instead of tfjs's: tfjs-layers
 * differentiates through tf.moments and tf.batchNorm separately, which costs
 * about three times the element-wise passes. The forward value is the same
 * tf.batchNorm kernel on the same tf.moments, and the moving statistics are
 * updated exactly as tfjs-layers does, so only gradients change, by rounding.
 *   x̂ = (x − μ)·r, r = 1/√(σ² + ε), y = γ·x̂ + β (σ² biased, as tfjs-layers)
 *   dβ = Σ dy, dγ = Σ dy·x̂, dx = γ·r·(dy − dβ/N − x̂·dγ/N)   (Σ over the N rows)
 * Anything else (another axis, no γ or β) goes through layer.apply.
 */
function batchNormTraining(layer: Layer, x: tf.Tensor): tf.Tensor {
  const c = layer.getConfig() as { axis: number | number[]; momentum: number; epsilon: number; center: boolean; scale: boolean };
  const gamma = weight(layer, 'gamma');
  const beta = weight(layer, 'beta');
  const movingMean = stateVariable(layer, 'moving_mean');
  const movingVariance = stateVariable(layer, 'moving_variance');
  const axis = Array.isArray(c.axis) ? c.axis : [c.axis];
  if (
    gamma === undefined || beta === undefined || movingMean === undefined || movingVariance === undefined ||
    axis.length !== 1 || (axis[0] !== -1 && axis[0] !== x.rank - 1) || x.rank < 2
  ) {
    return layer.apply(x, { training: true }) as tf.Tensor;
  }
  const axes = Array.from({ length: x.rank - 1 }, (_, i) => i);
  const rows = x.shape.slice(0, -1).reduce((a, b) => a * b, 1);
  const decay = 1 - c.momentum;
  const op = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [input, g, b, save] = args as [tf.Tensor, tf.Tensor, tf.Tensor, tf.GradSaveFunc];
    const { mean, variance } = tf.moments(input, axes);
    const value = tf.batchNorm(input, mean, variance, b, g, c.epsilon);
    // tfjs-layers' doMovingAverage, op for op: m ← m − (m − batch)·(1 − momentum).
    movingMean.assign(tf.sub(movingMean, tf.mul(tf.sub(movingMean, mean), decay)));
    movingVariance.assign(tf.sub(movingVariance, tf.mul(tf.sub(movingVariance, variance), decay)));
    save([input, mean, tf.rsqrt(tf.add(variance, c.epsilon)), g]);
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xs, mu, r, gs] = saved as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor];
        const xhat = tf.mul(tf.sub(xs, mu), r);
        const dBeta = tf.sum(dy, axes);
        const dGamma = tf.sum(tf.mul(dy, xhat), axes);
        const centred = tf.sub(dy, tf.div(dBeta, rows));
        const dx = tf.mul(tf.sub(centred, tf.mul(xhat, tf.div(dGamma, rows))), tf.mul(gs, r));
        return [dx, dGamma, dBeta];
      },
    };
  });
  return op(x, gamma, beta);
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
        case 'BatchNormalization':
          y = training ? batchNormTraining(layer, y) : (layer.apply(y, { training }) as tf.Tensor);
          break;
        default:
          y = layer.apply(y, { training }) as tf.Tensor;
      }
    }
    return y;
  });
}
