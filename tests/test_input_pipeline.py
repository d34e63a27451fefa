"""The tf.data input pipeline: seeded shuffling, batching, flips, and moving on after a resume."""

import numpy as np

from mnistpipe.input_pipeline import make_datasets, skip_epochs


def test_flip_augmentation_mirrors_about_half_of_each_batch_the_same_way_on_every_rerun():
    images = np.arange(64 * 28 * 28, dtype=np.float32).reshape(64, 28, 28, 1)
    labels = np.arange(64)

    def flipped_labels():
        train_dataset, _ = make_datasets(
            (images, labels), (images[:8], labels[:8]), 64, 0, 3, "flip"
        )
        ((batch_images, batch_labels),) = list(train_dataset)
        batch_images, batch_labels = batch_images.numpy(), batch_labels.numpy()
        flipped = []
        for image, label in zip(batch_images, batch_labels, strict=True):
            if np.array_equal(image, images[label][:, ::-1]):
                flipped.append(int(label))
            else:
                np.testing.assert_array_equal(image, images[label])
        return flipped

    first = flipped_labels()
    assert 16 <= len(first) <= 48
    assert flipped_labels() == first


def epoch_orders(train_dataset, epochs):
    return [np.concatenate([labels.numpy() for _, labels in train_dataset]) for _ in range(epochs)]


def test_the_training_set_is_shuffled_anew_each_epoch_yet_the_same_on_a_rerun():
    images = np.zeros((40, 28, 28, 1), dtype=np.float32)
    labels = np.arange(40)
    first = epoch_orders(make_datasets((images, labels), (images, labels), 8, 0, 5)[0], 2)
    second = epoch_orders(make_datasets((images, labels), (images, labels), 8, 0, 5)[0], 2)
    assert sorted(first[0]) == list(labels)
    assert not np.array_equal(first[0], first[1])
    np.testing.assert_array_equal(np.stack(first), np.stack(second))


def test_skipping_epochs_gives_the_order_the_next_epoch_would_have_had():
    images = np.zeros((40, 28, 28, 1), dtype=np.float32)
    labels = np.arange(40)
    uninterrupted = epoch_orders(make_datasets((images, labels), (images, labels), 8, 0, 5)[0], 3)
    resumed_dataset = make_datasets((images, labels), (images, labels), 8, 0, 5)[0]
    skip_epochs(resumed_dataset, 2)
    np.testing.assert_array_equal(epoch_orders(resumed_dataset, 1)[0], uninterrupted[2])


def _offset(original, shifted, limit):
    """The (rows, columns) by which ``shifted`` is ``original`` moved, zeros filling the edge."""
    padded = np.pad(original, limit)
    for rows in range(-limit, limit + 1):
        for columns in range(-limit, limit + 1):
            moved = np.roll(padded, (rows, columns), axis=(0, 1))[limit:-limit, limit:-limit]
            if np.array_equal(moved, shifted):
                return rows, columns
    return None


def test_shifts_move_each_image_by_its_own_offset_within_the_limit_the_same_on_every_rerun():
    rng = np.random.default_rng(0)
    images = rng.random((64, 28, 28, 1), dtype=np.float32) + 1  # No zeros: every move shows.
    labels = np.arange(64)

    def offsets():
        train_dataset, _ = make_datasets(
            (images, labels), (images[:8], labels[:8]), 64, 0, 3, "none", shift_pixels=2
        )
        ((batch_images, batch_labels),) = list(train_dataset)
        return [
            _offset(images[label, :, :, 0], image[:, :, 0], 2)
            for image, label in zip(batch_images.numpy(), batch_labels.numpy(), strict=True)
        ]

    first = offsets()
    assert None not in first
    assert len(set(first)) > 10
    assert offsets() == first


def test_shifts_leave_the_flips_of_a_run_without_shifts_as_they_were():
    images = np.ones((64, 28, 28, 1), dtype=np.float32)
    images[:, :, :14] = 2.0  # Mirrored, the bright half is on the right.
    labels = np.arange(64)

    def flipped(shift_pixels):
        train_dataset, _ = make_datasets(
            (images, labels), (images[:8], labels[:8]), 64, 0, 3, "flip", shift_pixels
        )
        ((batch_images, batch_labels),) = list(train_dataset)
        right_brighter = batch_images.numpy()[:, 14, 20, 0] > batch_images.numpy()[:, 14, 7, 0]
        return sorted(batch_labels.numpy()[right_brighter].tolist())

    assert flipped(1) == flipped(0)
    assert 16 <= len(flipped(0)) <= 48


def test_flips_and_shifts_work_on_rgb_images_of_any_height_and_width():
    # 12x20 RGB, each image distinct: every augmented image is its original mirrored
    # or not, then moved by at most 2 pixels each way, all three channels alike.
    rng = np.random.default_rng(1)
    images = rng.random((32, 12, 20, 3), dtype=np.float32) + 1  # No zeros: every move shows.
    labels = np.arange(32)
    train_dataset, _ = make_datasets(
        (images, labels), (images[:4], labels[:4]), 32, 0, 3, "flip", shift_pixels=2
    )
    ((batch_images, batch_labels),) = list(train_dataset)
    assert batch_images.shape == (32, 12, 20, 3)
    mirrored = 0
    for image, label in zip(batch_images.numpy(), batch_labels.numpy(), strict=True):
        original = images[label]
        found = [
            _offset(view[:, :, channel], image[:, :, channel], 2)
            for view in (original, original[:, ::-1])
            for channel in range(3)
        ]
        plain, flipped = found[:3], found[3:]
        assert (None not in plain and len(set(plain)) == 1) or (
            None not in flipped and len(set(flipped)) == 1
        )
        mirrored += None not in flipped and len(set(flipped)) == 1
    assert 0 < mirrored < 32
