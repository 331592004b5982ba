from flowchat_platform.runner import run_service
from flowchat_sandbox.app import create_app
from flowchat_sandbox.settings import SERVICE, Settings


def main() -> None:
    run_service(SERVICE, Settings, create_app)


if __name__ == "__main__":
    main()
