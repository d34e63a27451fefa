# A faithful copy of "TensorFlow 2 quickstart for experts", the tutorial this
# project grew from (see ../shared/seeds/), kept only as the benchmark's baseline.
#
# The tutorial's lines are unchanged, with three differences that only make it
# measurable: the data comes from `load_data` (the same uint8 arrays that
# keras.datasets returns, read from the pipeline's verified files, since dataset
# hosts may be unreachable); the body sits in a generator that yields after each
# epoch so the benchmark can alternate it with the pipeline; and `print` is
# replaced by the yielded figures. Do not "improve" this file: it is the baseline.

import tensorflow as tf
from tensorflow.keras import Model
from tensorflow.keras.layers import Conv2D, Dense, Flatten


def run(load_data, EPOCHS=5):
    (x_train, y_train), (x_test, y_test) = load_data()
    x_train, x_test = x_train / 255.0, x_test / 255.0

    # Add a channels dimension
    x_train = x_train[..., tf.newaxis].astype("float32")
    x_test = x_test[..., tf.newaxis].astype("float32")

    train_ds = tf.data.Dataset.from_tensor_slices(
        (x_train, y_train)).shuffle(10000).batch(32)

    test_ds = tf.data.Dataset.from_tensor_slices((x_test, y_test)).batch(32)

    class MyModel(Model):
      def __init__(self):
        super().__init__()
        self.conv1 = Conv2D(32, 3, activation='relu')
        self.flatten = Flatten()
        self.d1 = Dense(128, activation='relu')
        self.d2 = Dense(10)

      def call(self, x):
        x = self.conv1(x)
        x = self.flatten(x)
        x = self.d1(x)
        return self.d2(x)

    # Create an instance of the model
    model = MyModel()

    loss_object = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    optimizer = tf.keras.optimizers.Adam()

    train_loss = tf.keras.metrics.Mean(name='train_loss')
    train_accuracy = tf.keras.metrics.SparseCategoricalAccuracy(name='train_accuracy')

    test_loss = tf.keras.metrics.Mean(name='test_loss')
    test_accuracy = tf.keras.metrics.SparseCategoricalAccuracy(name='test_accuracy')

    @tf.function
    def train_step(images, labels):
      with tf.GradientTape() as tape:
        # training=True is only needed if there are layers with different
        # behavior during training versus inference (e.g. Dropout).
        predictions = model(images, training=True)
        loss = loss_object(labels, predictions)
      gradients = tape.gradient(loss, model.trainable_variables)
      optimizer.apply_gradients(zip(gradients, model.trainable_variables))

      train_loss(loss)
      train_accuracy(labels, predictions)

    @tf.function
    def test_step(images, labels):
      # training=False is only needed if there are layers with different
      # behavior during training versus inference (e.g. Dropout).
      predictions = model(images, training=False)
      t_loss = loss_object(labels, predictions)

      test_loss(t_loss)
      test_accuracy(labels, predictions)

    for epoch in range(EPOCHS):
      # Reset the metrics at the start of the next epoch
      train_loss.reset_state()
      train_accuracy.reset_state()
      test_loss.reset_state()
      test_accuracy.reset_state()

      for images, labels in train_ds:
        train_step(images, labels)

      for test_images, test_labels in test_ds:
        test_step(test_images, test_labels)

      yield {
        'epoch': epoch + 1,
        'loss': float(train_loss.result()),
        'accuracy': float(train_accuracy.result()),
        'test_loss': float(test_loss.result()),
        'test_accuracy': float(test_accuracy.result()),
        'train_images': len(x_train),
      }
