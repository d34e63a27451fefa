"""The tf.data input pipeline of training: seeded shuffling, batching and augmentation."""

import tensorflow as tf

from mnistpipe.data import Examples, examples_from_arrays


def as_examples(split) -> Examples:
    """``split`` as Examples: it may be Examples already, or (images, labels) arrays."""
    return split if isinstance(split, Examples) else examples_from_arrays(*split)


def make_datasets(train, val, batch_size: int, shuffle_buffer: int, seed: int, augment="none"):
    """tf.data pipelines as in the quickstart: shuffled, batched training data; batched validation.

    ``train`` and ``val`` are Examples or (images, labels) arrays.
    ``shuffle_buffer`` 0 shuffles over the whole training set (a true
    permutation each epoch); the shuffle is seeded so reruns see the same order.
    ``augment`` "flip" mirrors a random half of each training batch left to right
    (params.yaml's train.augment, checked when the params are loaded).
    """
    train, val = as_examples(train), as_examples(val)
    buffer = shuffle_buffer or train.count
    train_dataset = train.dataset.shuffle(buffer, seed=seed, reshuffle_each_iteration=True).batch(
        batch_size
    )
    augmentation = AUGMENTATIONS[augment]
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
