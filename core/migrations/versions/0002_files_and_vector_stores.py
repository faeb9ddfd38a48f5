"""Files, vector stores, their files and batches, and searchable chunks.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 10:00:00
"""
from alembic import op
import sqlalchemy as sa
from pgvector.sqlalchemy import VECTOR
from sqlalchemy.dialects import postgresql

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS vector")
    op.create_table('files',
    sa.Column('id', sa.Text(), nullable=False),
    sa.Column('seq', sa.BigInteger(), sa.Identity(always=True), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('bytes', sa.BigInteger(), nullable=False),
    sa.Column('filename', sa.Text(), nullable=False),
    sa.Column('purpose', sa.Text(), nullable=False),
    sa.Column('content_type', sa.Text(), nullable=False),
    sa.Column('storage_key', sa.Text(), nullable=False),
    sa.Column('expires_at', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('seq')
    )
    op.create_index(op.f('ix_files_purpose'), 'files', ['purpose'], unique=False)
    op.create_table('vector_stores',
    sa.Column('id', sa.Text(), nullable=False),
    sa.Column('seq', sa.BigInteger(), sa.Identity(always=True), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('last_active_at', sa.BigInteger(), nullable=False),
    sa.Column('expires_after', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('expires_at', sa.BigInteger(), nullable=True),
    sa.Column('metadata', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('seq')
    )
    op.create_table('file_batches',
    sa.Column('id', sa.Text(), nullable=False),
    sa.Column('seq', sa.BigInteger(), sa.Identity(always=True), nullable=False),
    sa.Column('vector_store_id', sa.Text(), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['vector_store_id'], ['vector_stores.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('seq')
    )
    op.create_index('file_batches_store_seq', 'file_batches', ['vector_store_id', 'seq'],
                    unique=False)
    op.create_table('vector_store_files',
    sa.Column('vector_store_id', sa.Text(), nullable=False),
    sa.Column('id', sa.Text(), nullable=False),
    sa.Column('seq', sa.BigInteger(), sa.Identity(always=True), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.Text(), nullable=False),
    sa.Column('last_error', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('usage_bytes', sa.BigInteger(), nullable=False),
    sa.Column('chunking_strategy', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('attributes', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('batch_id', sa.Text(), nullable=True),
    sa.Column('ingest_id', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['batch_id'], ['file_batches.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['id'], ['files.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['vector_store_id'], ['vector_stores.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('vector_store_id', 'id'),
    sa.UniqueConstraint('seq')
    )
    op.create_index(op.f('ix_vector_store_files_id'), 'vector_store_files', ['id'], unique=False)
    op.create_index('vector_store_files_batch', 'vector_store_files', ['batch_id'], unique=False)
    op.create_index('vector_store_files_store_seq', 'vector_store_files',
                    ['vector_store_id', 'seq'], unique=False)
    # `vector` without dimensions: embeddings of any model/size (see core/tables.py).
    op.create_table('chunks',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=True), nullable=False),
    sa.Column('vector_store_id', sa.Text(), nullable=False),
    sa.Column('file_id', sa.Text(), nullable=False),
    sa.Column('chunk_index', sa.Integer(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('token_count', sa.Integer(), nullable=False),
    sa.Column('embedding_model', sa.Text(), nullable=True),
    sa.Column('embedding', VECTOR(), nullable=True),
    sa.Column('tsv', postgresql.TSVECTOR(),
              sa.Computed("to_tsvector('english', text)", persisted=True), nullable=True),
    sa.ForeignKeyConstraint(['vector_store_id', 'file_id'],
                            ['vector_store_files.vector_store_id', 'vector_store_files.id'],
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('chunks_store_file', 'chunks', ['vector_store_id', 'file_id', 'chunk_index'],
                    unique=False)
    op.create_index('chunks_tsv', 'chunks', ['tsv'], unique=False, postgresql_using='gin')


def downgrade() -> None:
    op.drop_index('chunks_tsv', table_name='chunks', postgresql_using='gin')
    op.drop_index('chunks_store_file', table_name='chunks')
    op.drop_table('chunks')
    op.drop_index('vector_store_files_store_seq', table_name='vector_store_files')
    op.drop_index('vector_store_files_batch', table_name='vector_store_files')
    op.drop_index(op.f('ix_vector_store_files_id'), table_name='vector_store_files')
    op.drop_table('vector_store_files')
    op.drop_index('file_batches_store_seq', table_name='file_batches')
    op.drop_table('file_batches')
    op.drop_table('vector_stores')
    op.drop_index(op.f('ix_files_purpose'), table_name='files')
    op.drop_table('files')
    # The extension stays: other databases objects may use it.
