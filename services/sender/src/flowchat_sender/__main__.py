from flowchat_platform.runner import run_service

from flowchat_sender import SERVICE
from flowchat_sender.app import create_app
from flowchat_sender.settings import Settings


def main() -> None:
    run_service(SERVICE, Settings, create_app)


if __name__ == "__main__":
    main()
