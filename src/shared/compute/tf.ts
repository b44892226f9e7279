/**
 * The one place that imports TensorFlow.js. Every other module takes `tf` and
 * `tfl` from here, so that a single tfjs-core instance (and so a single kernel
 * and gradient registry) exists per process.
 *
 * Importing tfjs-layers matters for more than layers: the Node build of
 * tfjs-core registers no gradient functions ("gradient function not found for
 * Add"), while the layers bundle registers them all. Chained tensor methods
 * (`x.square()`) are not registered in the Node build either: use `tf.square(x)`.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';

export { tf, tfl };
