"""A plugin used only by the test-suite: secrets, a required field and a pipeline hook."""
