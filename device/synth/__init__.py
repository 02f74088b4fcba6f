"""Synthetic text rendering shared by the recognizer's training and the synthetic camera.

    fonts    discover font files and split them into train / held-out families
    vocab    words and sign-like strings (ding dictionary, French list, numbers, prices, ...)
    lines    render one text line and crop it like a detector would
    augment  camera degradations: perspective, blur, noise, JPEG, uneven light

Every function that draws randomness takes a `numpy.random.Generator`.
"""
