"""og.data: training data (LLaVA-format datasets) and the synthetic `shapes` generator.

Nothing is imported here (importing `og.data` stays cheap); use the modules:
`og.data.shapes` (`ShapesDataset`, `generate_scene`, `write_shapes`), `og.data.shapes.scene`,
`og.data.shapes.render`, `og.data.shapes.text`, `og.data.shapes.probes`, `og.data.tokenizer`
(`train_tokenizer`).
"""
