"""S3 object storage (boto3); blocking calls run in a thread."""

from __future__ import annotations

import asyncio
from typing import Any, BinaryIO

import boto3
from botocore.config import Config

from core.settings import Settings


def parsed_text_key(file_id: str) -> str:
    """Where ingestion keeps a file's extracted text (served by vector-store file content)."""
    return f"parsed/{file_id}.txt"


class ObjectStorage:
    def __init__(self, settings: Settings) -> None:
        self.bucket = settings.s3_bucket_name
        self._client: Any = boto3.client(
            "s3",
            endpoint_url=settings.s3_endpoint or None,
            aws_access_key_id=settings.s3_access_key or None,
            aws_secret_access_key=settings.s3_secret_key.get_secret_value() or None,
            region_name=settings.s3_region,
            config=Config(retries={"max_attempts": 2}, connect_timeout=3, read_timeout=30),
        )

    async def ping(self) -> None:
        await asyncio.to_thread(self._client.head_bucket, Bucket=self.bucket)

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        await asyncio.to_thread(
            self._client.put_object, Bucket=self.bucket, Key=key, Body=data,
            ContentType=content_type,
        )

    async def get(self, key: str) -> bytes:
        response = await asyncio.to_thread(self._client.get_object, Bucket=self.bucket, Key=key)
        body: bytes = await asyncio.to_thread(response["Body"].read)
        return body

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._client.delete_object, Bucket=self.bucket, Key=key)

    async def put_fileobj(self, key: str, fileobj: BinaryIO, content_type: str) -> None:
        """Stream a file object (an upload spooled to disk) without reading it into memory."""
        await asyncio.to_thread(
            self._client.upload_fileobj, fileobj, self.bucket, key,
            ExtraArgs={"ContentType": content_type},
        )
