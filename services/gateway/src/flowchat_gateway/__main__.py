from flowchat_gateway import SERVICE
from flowchat_gateway.app import create_app
from flowchat_gateway.settings import Settings
from flowchat_platform.runner import run_service


def main() -> None:
    run_service(SERVICE, Settings, create_app)


if __name__ == "__main__":
    main()
