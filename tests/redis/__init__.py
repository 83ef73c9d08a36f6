"""Tests of behaviour only the Redis backend has, against real ``redis-server`` processes."""
