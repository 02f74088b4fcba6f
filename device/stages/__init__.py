"""One wrapper per model stage (detector, recognizer, translator) and the loaders that build them from the model store."""
