from fastapi.testclient import TestClient


def test_healthz_answers_once_the_database_does(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
