"""A wider tabular network than the built-in MLP: two hidden layers with a noise site after
the input and after each hidden layer."""

import keras


def build(noise):
    inputs = keras.Input(shape=(30,))  # the 30 features of the breast-cancer table
    x = noise("input")(inputs)
    x = keras.layers.Dense(64, activation="relu")(x)
    x = noise("dense1")(x)
    x = keras.layers.Dense(32, activation="relu")(x)
    x = noise("dense2")(x)
    outputs = keras.layers.Dense(1, activation="sigmoid")(x)  # P(benign): a binary task
    return keras.Model(inputs, outputs)
