"""Protocol adapters that let the vendors' unmodified SDKs talk to Agora (/work/shared/api-surface.md)."""
