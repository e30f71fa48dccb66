"""og.llm."""
