"""og.data: training data (LLaVA-format datasets) and the synthetic `shapes` generator.

Nothing is imported here (importing `og.data` stays cheap); use the modules:
`og.data.shapes` (`ShapesDataset`, `generate_scene`, `write_shapes`), `og.data.shapes_scene`,
`og.data.shapes_render`, `og.data.shapes_text`, `og.data.shapes_probes`, `og.data.tokenizer`
(`train_tokenizer`).
"""
