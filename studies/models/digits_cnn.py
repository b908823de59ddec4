"""A small CNN for scikit-learn's 8x8 digits, with four places noise may go.

noise-search calls build(noise) once per repeat and configuration; noise("site") is the
identity unless the configuration being trained puts noise on that site.
"""

import keras


def build(noise):
    inputs = keras.Input(shape=(8, 8))  # the digits keep their shape: (n, 8, 8)
    x = keras.layers.Reshape((8, 8, 1))(inputs)
    x = noise("input")(x)  # noise on the pixels
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    x = noise("conv1")(x)  # on the first feature maps, after the activation
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(x)
    x = noise("conv2")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(32, activation="relu")(x)
    x = noise("dense1")(x)
    outputs = keras.layers.Dense(10, activation="softmax")(x)  # probabilities of the 10 digits
    return keras.Model(inputs, outputs)
