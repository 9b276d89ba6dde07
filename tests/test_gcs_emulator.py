"""Each storage client the pipeline uses reads, writes, lists, copies/renames and deletes on the shared GCS
emulator (tests/gcs_emulator.py): real calls against fake-gcs-server, nothing mocked."""


def test_google_cloud_storage_reaches_the_emulator(gcs_emulator):
    client = gcs_emulator.client()
    bucket = client.bucket(gcs_emulator.new_bucket())
    bucket.blob("a/one.txt").upload_from_string(b"first")
    bucket.blob("a/two.txt").upload_from_string(b"second")

    assert sorted(blob.name for blob in client.list_blobs(bucket, prefix="a/")) == ["a/one.txt", "a/two.txt"]
    bucket.copy_blob(bucket.blob("a/one.txt"), bucket, "b/copy.txt")
    bucket.rename_blob(bucket.blob("a/two.txt"), "b/renamed.txt")
    bucket.blob("a/one.txt").delete()

    assert sorted(blob.name for blob in client.list_blobs(bucket)) == ["b/copy.txt", "b/renamed.txt"]
    assert bucket.blob("b/copy.txt").download_as_bytes() == b"first"
    assert bucket.blob("b/renamed.txt").download_as_bytes() == b"second"
