"""Local stand-ins for third parties we cannot reach in tests (stores), following their documented shapes."""
