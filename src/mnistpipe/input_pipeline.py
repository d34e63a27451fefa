"""The tf.data input pipeline of training: seeded shuffling, batching and augmentation."""

import tensorflow as tf

from mnistpipe.examples import Examples, examples_from_arrays


def as_examples(split) -> Examples:
    """``split`` as Examples: it may be Examples already, or (images, labels) arrays."""
    return split if isinstance(split, Examples) else examples_from_arrays(*split)


def make_datasets(
    train, val, batch_size: int, shuffle_buffer: int, seed: int, augment="none", shift_pixels=0
):
    """tf.data pipelines as in the quickstart: shuffled, batched training data; batched validation.

    ``train`` and ``val`` are Examples or (images, labels) arrays.
    ``shuffle_buffer`` 0 shuffles over the whole training set (a true
    permutation each epoch); the shuffle is seeded so reruns see the same order.
    ``augment`` "flip" mirrors a random half of each training batch left to right
    (params.yaml's train.augment, checked when the params are loaded).
    ``shift_pixels`` N > 0 also moves each training image by its own random
    offset of -N to N pixels in each direction, filling the edge with zeros
    (train.shift_pixels).
    """
    train, val = as_examples(train), as_examples(val)
    buffer = shuffle_buffer or train.count
    train_dataset = train.dataset.shuffle(buffer, seed=seed, reshuffle_each_iteration=True).batch(
        batch_size
    )
    augmentation = _augmentation(augment, shift_pixels)
    if augmentation is not None:
        # One stateless seed pair a batch, from a seeded stream that differs each
        # epoch: the augmentation is random, yet the same on every rerun.
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        train_dataset = tf.data.Dataset.zip((train_dataset, seeds)).map(
            augmentation, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
        )
    val_dataset = val.dataset.batch(batch_size)
    return train_dataset.prefetch(tf.data.AUTOTUNE), val_dataset.prefetch(tf.data.AUTOTUNE)


def _flip_random_half(batch, seed_pair):
    # Fashion-MNIST's classes look the same mirrored (a shoe pointing left is
    # still a shoe), so mirroring adds examples without changing any label.
    images, labels = batch
    flip = tf.random.stateless_uniform(tf.shape(labels)[:1], seed=seed_pair) < 0.5
    images = tf.where(flip[:, tf.newaxis, tf.newaxis, tf.newaxis], tf.reverse(images, [2]), images)
    return images, labels


def _shift_each_image(images, seed_pair, shift_pixels: int):
    # Whole-batch tensor ops (pad, then gather each image's own rows and
    # columns), no per-image Python: every image gets its own offset at the cost
    # of two gathers. Fashion-MNIST's background is 0, so zeros fill the edge.
    count, rows, columns = tf.shape(images)[0], tf.shape(images)[1], tf.shape(images)[2]
    offsets = tf.random.stateless_uniform(
        [count, 2], seed=seed_pair, minval=0, maxval=2 * shift_pixels + 1, dtype=tf.int32
    )
    edge = [shift_pixels, shift_pixels]
    padded = tf.pad(images, [[0, 0], edge, edge, [0, 0]])
    row_indices = offsets[:, :1] + tf.range(rows)[tf.newaxis, :]
    column_indices = offsets[:, 1:] + tf.range(columns)[tf.newaxis, :]
    shifted = tf.gather(padded, row_indices, axis=1, batch_dims=1)
    return tf.gather(shifted, column_indices, axis=2, batch_dims=1)


def _augmentation(augment: str, shift_pixels: int):
    """The batch augmentation of ``augment`` followed by the shift, or None for neither."""
    first = AUGMENTATIONS[augment]
    if not shift_pixels:
        return first

    def augmentation(batch, seed_pair):
        if first is not None:
            batch = first(batch, seed_pair)
        images, labels = batch
        # A seed of its own, so that the flips stay those of a run without shifts.
        shift_seed = tf.random.experimental.stateless_fold_in(seed_pair, 1)
        return _shift_each_image(images, shift_seed, shift_pixels), labels

    return augmentation


# The augmentations params.AUGMENTATIONS names (checked when the params are
# loaded): each maps a batch and a stateless seed pair to a batch.
AUGMENTATIONS = {"none": None, "flip": _flip_random_half}


def skip_epochs(train_dataset, iterators: int) -> None:
    """Move the seeded shuffle and augmentation on, as if ``iterators`` passes had been made.

    Each iterator made over the dataset draws a new shuffle order and new flip
    seeds when it is created, so making and dropping as many as the training
    loop made gives a resumed run the very batches that the uninterrupted run
    saw next (tests/test_checkpoint.py checks it, both loops).
    """
    for _ in range(iterators):
        iter(train_dataset)
