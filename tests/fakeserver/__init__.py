"""The scripted OpenAI-compatible test model server and its pytest fixture (`fake_llm`)."""
