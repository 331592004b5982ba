pytest_plugins = ["flowchat_platform.testing"]
